import ArgumentParser
import Domain
import EventStore
import Foundation
import Projections

/// `touchstone task wait ID…`: blocks until every task has ended.
///
/// Exits with the task's own exit code for one task (0 when it succeeded; 1 when it ended without one: cancelled,
/// lost, failed to start), and for several 0 when all succeeded, else 1. It wakes on the log's tail, not a timer loop.
struct TaskWait: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
        abstract: "Wait until tasks end; exit with the task's exit code (one task), or 1 when any did not succeed.")

    @Argument(help: "Task IDs (tsk-…), or unique prefixes of them.")
    var ids: [String]

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard !ids.isEmpty else { throw ValidationError("name at least one task") }
    }

    /// The exit status for ended rows: one task's own exit code (1 when it has none or did not succeed with 0), or
    /// for several 0 when all succeeded, else 1.
    static func exitStatus(_ rows: [TaskRow]) -> Int32 {
        if rows.count == 1, let row = rows.first {
            if row.status == .succeeded { return 0 }
            if row.status == .failed, let code = row.exitCode, (1...255).contains(code) { return code }
            return 1
        }
        return rows.allSatisfy { $0.status == .succeeded } ? 0 : 1
    }

    func run() async throws {
        let log = try global.openLog()
        var taskIDs: [TaskID] = []
        for id in ids { taskIDs.append(try await log.resolveTask(id)) }
        let streams = Set(taskIDs.map(StreamName.task))
        var position = try await log.store.lastPosition()
        while true {
            let board = try await log.readModel(TaskBoard.self)
            let rows = taskIDs.compactMap { board[$0] }
            if rows.count == taskIDs.count, rows.allSatisfy(\.status.isTerminal) {
                switch global.format {
                case .json:
                    print(Render.json(rows))
                case .table:
                    for row in rows {
                        print(
                            "\(row.taskID) \(row.status.rawValue)"
                                + (row.exitCode.map { " (exit \($0))" } ?? "") + (row.reason.map { ": \($0)" } ?? ""))
                    }
                }
                let status = Self.exitStatus(rows)
                if status != 0 { throw ExitCode(status) }
                return
            }
            // Wait for the next event of one of these tasks (the log's tail), then look again.
            for try await event in log.store.tail(after: position) {
                position = event.position
                if streams.contains(event.stream) { break }
            }
        }
    }
}
