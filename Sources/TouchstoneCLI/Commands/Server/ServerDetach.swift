import ArgumentParser
import Domain
import Foundation
import Orchestrator
import Projections

/// `touchstone server detach NAME [--force]`.
struct ServerDetach: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detach",
        abstract: "Detach a server: refused while Touchstone tasks run on it; --force drains it with a zero deadline first.")

    @Argument(help: "The server's name.")
    var name: String

    @Flag(help: "Stop its tasks now (requeued elsewhere), then detach.")
    var force = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let log = try global.openLog()
        let row = try await ServerLifecycleSupport.append(to: name, in: log, actor: global.operatorActor) { row in
            try ServerLifecycleSupport.decide(.detach(force: force), given: row)
        }
        switch global.format {
        case .json: print(Render.json(row))
        case .table:
            print(row.detached
                ? "\(row.serverID) is detached"
                : "\(row.serverID) is \(row.state.rawValue): stopping \(row.booked.count) task(s), then detaching")
        }
    }
}
