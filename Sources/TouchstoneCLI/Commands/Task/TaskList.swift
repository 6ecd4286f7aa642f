import ArgumentParser
import Foundation
import EventStore
import Transport
import Domain
import Projections

/// `touchstone task list`.
struct TaskList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List tasks, oldest first.")

    @OptionGroup var global: GlobalOptions

    @Option(help: "Only tasks in this state (queued, dispatching, starting, running, succeeded, failed, cancelled, lost).")
    var status: String?

    func validate() throws {
        if let status, TaskStatus(rawValue: status) == nil {
            throw ValidationError("unknown status \(status.debugDescription)")
        }
    }

    func run() async throws {
        let log = try global.openLog()
        let tasks = try await log.readModel(TaskBoard.self).rows.values
            .filter { status == nil || $0.status.rawValue == status }
            .sorted { ($0.submittedAt, $0.taskID) < ($1.submittedAt, $1.taskID) }
        switch global.format {
        case .json:
            print(Render.json(tasks))
        case .table:
            print(
                Render.table(
                    ["TASK", "NAME", "STATE", "SERVER", "ATTEMPT", "DURATION", "EXIT", "COMMAND"],
                    tasks.map {
                        [
                            $0.taskID.rawValue, $0.name ?? "-", $0.status.rawValue, $0.serverID?.rawValue ?? "-",
                            "\($0.attempt)", Render.duration(from: $0.startedAt, to: $0.finishedAt),
                            $0.exitCode.map(String.init) ?? "-", $0.command.joined(separator: " "),
                        ]
                    }))
        }
    }
}
