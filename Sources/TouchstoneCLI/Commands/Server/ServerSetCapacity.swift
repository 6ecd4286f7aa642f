import ArgumentParser
import Domain
import Foundation
import Orchestrator
import Projections

/// `touchstone server set-capacity NAME --max-tasks N`.
struct ServerSetCapacity: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set-capacity",
        abstract: "Change a server's task limit. Tasks already running are not stopped; no new ones are booked past it.")

    @Argument(help: "The server's name.")
    var name: String

    @Option(help: "The most Touchstone tasks it may run at once (0–1024; 0 drains it).")
    var maxTasks: Int

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard (0...1024).contains(maxTasks) else { throw ValidationError("--max-tasks must be 0–1024") }
    }

    func run() async throws {
        let log = try global.openLog()
        let row = try await ServerLifecycleSupport.append(to: name, in: log, actor: global.operatorActor) { row in
            try ServerLifecycleSupport.decide(.setCapacity(maxTasks), given: row)
        }
        switch global.format {
        case .json: print(Render.json(row))
        case .table: print("\(row.serverID): max-tasks \(row.maxTasks), \(row.booked.count) booked, \(row.state.rawValue)")
        }
    }
}
