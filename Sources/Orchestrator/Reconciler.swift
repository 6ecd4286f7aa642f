import Domain
import Foundation
import Projections
import Wire

/// Turns what an agent reports into task transitions: pure, so the same reports always give the same events.
public enum Reconciler {
    /// What the backend knows when it reads a report.
    public struct Context: Sendable, Equatable {
        /// The reporting server.
        public var server: ServerID
        /// The server's drain deadline has passed, so a `stopped` report is an infrastructure failure to requeue
        /// rather than a cancellation.
        public var stoppedForDrain: Bool
        /// Attempts a task gets before an infrastructure failure is final (retry policy).
        public var maxAttempts: Int

        public init(server: ServerID, stoppedForDrain: Bool = false, maxAttempts: Int = 3) {
            self.server = server
            self.stoppedForDrain = stoppedForDrain
            self.maxAttempts = maxAttempts
        }
    }

    /// The events that bring a task's row in line with the agent's report of the same attempt.
    ///
    /// - Returns: `task.started` and/or `task.finished` (then `task.requeued` for a retryable infrastructure
    ///   failure), or nothing when the row already agrees or the report is about another attempt or server.
    public static func transitions(for row: TaskRow, report: TaskStatusReport, context: Context) -> [DomainEvent] {
        let server = context.server
        // Only a placed attempt is reconciled: a queued row (requeued after a loss) is not finished by a late report
        // of its old attempt, which cleanup stops instead.
        let placed = row.status == .dispatching || row.status == .starting || row.status == .running
        guard row.attempt == report.attempt, row.serverID == server, placed else { return [] }
        var events: [DomainEvent] = []
        let notYetRunning = row.status == .dispatching || row.status == .starting
        // A stop that overtook its start leaves a tombstone (stopped, never started): no `task.started` for it.
        let neverStarted = report.state == .failedToStart || (report.state == .stopped && report.startedAt == nil && report.pid == nil)
        if notYetRunning, !neverStarted {
            events.append(
                .taskStarted(
                    TaskStarted(
                        taskID: row.taskID, attempt: row.attempt, serverID: server, pid: report.pid,
                        // An attempt adopted from the runtime's inventory may not know when it started: when the
                        // backend learned it runs is the honest bound.
                        startedAt: report.startedAt ?? Date())))
        }
        let finished: TaskFinished
        switch report.state {
        case .running:
            return events
        case .exited where vanished(report):
            // The process disappeared with no exit code (the host rebooted, or the agent and its tasks were killed
            // together): never the user's failure. Lost, an infrastructure failure, retried (issue 17 part 4).
            finished = TaskFinished(
                taskID: row.taskID, attempt: row.attempt, serverID: server, outcome: .lost,
                failureClass: .infrastructure,
                reason: "the process vanished with no exit code" + (report.reason.map { " (\($0))" } ?? ""),
                outputs: report.outputs, endedAt: report.endedAt)
        case .exited:
            let succeeded = report.exitCode == 0 && report.signal == nil
            finished = TaskFinished(
                taskID: row.taskID, attempt: row.attempt, serverID: server, outcome: succeeded ? .succeeded : .failed,
                exitCode: report.exitCode, signal: report.signal, failureClass: succeeded ? nil : .user,
                reason: report.reason, outputs: report.outputs, endedAt: report.endedAt)
        case .stopped where context.stoppedForDrain:
            finished = TaskFinished(
                taskID: row.taskID, attempt: row.attempt, serverID: server, outcome: .failed,
                exitCode: report.exitCode, signal: report.signal, failureClass: .infrastructure,
                reason: "stopped: the drain deadline of \(server) passed", outputs: report.outputs,
                endedAt: report.endedAt)
        case .stopped where row.cancelRequestedAt == nil:
            // Nobody asked for this stop (no cancel, no drain deadline): the agent stopped its own task, shutting
            // down past its drain deadline. That is never the user's failure: an infrastructure one, retried.
            finished = TaskFinished(
                taskID: row.taskID, attempt: row.attempt, serverID: server, outcome: .failed,
                exitCode: report.exitCode, signal: report.signal, failureClass: .infrastructure,
                reason: "stopped by the agent of \(server), not by an operator"
                    + (report.reason.map { " (\($0))" } ?? ""),
                outputs: report.outputs, endedAt: report.endedAt)
        case .stopped:
            finished = TaskFinished(
                taskID: row.taskID, attempt: row.attempt, serverID: server, outcome: .cancelled,
                exitCode: report.exitCode, signal: report.signal, reason: report.reason, outputs: report.outputs,
                endedAt: report.endedAt)
        case .failedToStart:
            // A refusal by the agent's policy (docs/security.md) is final: retrying cannot change the policy.
            let refused = report.reason?.hasPrefix("policy: ") == true
            finished = TaskFinished(
                taskID: row.taskID, attempt: row.attempt, serverID: server, outcome: .failed,
                failureClass: refused ? .policy : .infrastructure, reason: report.reason, endedAt: report.endedAt)
        }
        events.append(.taskFinished(finished))
        if report.state == .stopped && context.stoppedForDrain {
            // An operator's drain is not the task's failure: it is always requeued, whatever attempt it was.
            events.append(
                .taskRequeued(
                    TaskRequeued(
                        taskID: row.taskID, afterAttempt: row.attempt,
                        reason: "requeued: \(server) was drained while the task ran")))
        } else if let requeue = requeue(after: finished, attemptsUsed: row.attemptsUsed, maxAttempts: context.maxAttempts) {
            events.append(requeue)
        }
        return events
    }

    /// Whether a report is of a process that vanished rather than ended: `exited` with neither an exit code nor a
    /// signal. A runtime records an exit code for every end it sees (the process runtime's wrapper writes one, Docker
    /// keeps one); only a process killed together with its supervisor, or a host that rebooted, leaves none.
    public static func vanished(_ report: TaskStatusReport) -> Bool {
        report.state == .exited && report.exitCode == nil && report.signal == nil
    }

    /// A running task the agent no longer reports, or one on a server unreachable past `lost_after`: `lost`, then
    /// requeued under the retry policy.
    public static func lost(_ row: TaskRow, reason: String, maxAttempts: Int) -> [DomainEvent] {
        guard !row.status.isTerminal, row.attempt > 0 else { return [] }
        let finished = TaskFinished(
            taskID: row.taskID, attempt: row.attempt, serverID: row.serverID, outcome: .lost,
            failureClass: .infrastructure, reason: reason)
        return [.taskFinished(finished)]
            + (requeue(after: finished, attemptsUsed: row.attemptsUsed, maxAttempts: maxAttempts).map { [$0] } ?? [])
    }

    /// The retry policy: an infrastructure failure or a loss is retried until `maxAttempts` attempts have run.
    /// Attempts withdrawn before they ran (``TaskRow/attemptsNotRun``) do not count.
    ///
    /// - Parameter attemptsUsed: The attempts that ran, this one included (``TaskRow/attemptsUsed``).
    public static func requeue(after finished: TaskFinished, attemptsUsed: Int, maxAttempts: Int) -> DomainEvent? {
        let retryable = finished.outcome == .lost || (finished.outcome == .failed && finished.failureClass == .infrastructure)
        guard retryable, attemptsUsed < maxAttempts else { return nil }
        return .taskRequeued(
            TaskRequeued(
                taskID: finished.taskID, afterAttempt: finished.attempt,
                reason: "retrying after attempt \(finished.attempt): \(finished.reason ?? finished.outcome.rawValue)"))
    }
}
