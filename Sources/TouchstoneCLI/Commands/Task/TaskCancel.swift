import ArgumentParser
import Domain
import EventStore
import Foundation
import Orchestrator
import Projections

/// `touchstone task cancel ID`: an operator intent, appended to the log whether or not the backend runs.
struct TaskCancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a task: a queued one at once, a placed one is stopped on its server (even if the backend is down now, when it starts).")

    @Argument(help: "The task ID (tsk-…), or any unique prefix of it.")
    var id: String

    @Option(help: "Why, kept in the log.")
    var reason: String?

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let log = try global.openLog()
        let taskID = try await log.resolveTask(id)
        guard let row = try await log.snapshot().tasks[taskID] else {
            throw CLIError("unknown task \(id.debugDescription): see `touchstone task list`")
        }
        do {
            // Decided against the row's version; a transition recorded meanwhile is read and decided again.
            try await CommandAppender(log: log).execute(
                .cancel(reason: reason), task: taskID, metadata: EventMetadata(actor: global.operatorActor))
        } catch let rejection as Rejection {
            throw CLIError(rejection.message)
        } catch let error as EventStoreError where error.code == .wrongExpectedVersion {
            throw CLIError("\(taskID) kept changing while cancelling; run the command again")
        }
        let after = try await log.snapshot().tasks[taskID]
        if after?.status == .cancelled {
            print("cancelled \(taskID)")
        } else {
            print("cancel requested for \(taskID) (\(row.status.rawValue) on \(row.serverID?.rawValue ?? "-")): it will be stopped")
        }
    }
}
