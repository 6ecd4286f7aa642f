import ArgumentParser
import Domain
import Foundation
import Orchestrator
import Projections

/// `touchstone server drain NAME [--deadline DURATION] [--reason TEXT]`.
struct ServerDrain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "Drain a server: max-tasks becomes 0; it is detached once every task on it is observed stopped.",
        discussion: """
            With --deadline, tasks still running when it passes are stopped (SIGTERM, a grace period, then SIGKILL) \
            and requeued elsewhere as infrastructure failures.
            """)

    @Argument(help: "The server's name.")
    var name: String

    @Option(help: "How long running tasks may finish: 90s, 10m, 2h (default: no deadline).")
    var deadline: String?

    @Option(help: "Why it is drained, shown by server show.")
    var reason: String?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let deadline, ServerLifecycleSupport.seconds(deadline) == nil {
            throw ValidationError("--deadline takes a duration like 90s, 10m, 2h or 0")
        }
    }

    func run() async throws {
        let log = try global.openLog()
        let seconds = deadline.flatMap(ServerLifecycleSupport.seconds)
        let row = try await ServerLifecycleSupport.append(to: name, in: log, actor: global.operatorActor) { row in
            try ServerLifecycleSupport.decide(
                .drain(deadline: seconds.map { Date().addingTimeInterval(Double($0)) }, reason: reason), given: row)
        }
        switch global.format {
        case .json: print(Render.json(row))
        case .table:
            print("\(row.serverID) is \(row.state.rawValue): \(row.booked.count) task(s) left"
                + (seconds.map { ", deadline in \($0)s" } ?? ", no deadline"))
        }
    }
}
