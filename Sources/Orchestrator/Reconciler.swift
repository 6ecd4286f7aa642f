import Domain
import Foundation
import Projections
import Wire

/// Turns what an agent reports into task transitions: pure, so the same reports always give the same events.
public enum Reconciler {
    /// The events that bring a task's row in line with the agent's report of the same attempt.
    ///
    /// - Parameters:
    ///   - row: The task as the log holds it.
    ///   - report: The agent's status report.
    ///   - server: The reporting server.
    /// - Returns: `task.started` and/or `task.finished`, or nothing when the row already agrees or the report is about
    ///   another attempt or server.
    public static func transitions(for row: TaskRow, report: TaskStatusReport, server: ServerID) -> [DomainEvent] {
        guard row.attempt == report.attempt, row.serverID == server, !row.status.isTerminal else { return [] }
        var events: [DomainEvent] = []
        let notYetRunning = row.status == .dispatching || row.status == .starting
        if notYetRunning, report.state != .failedToStart {
            events.append(
                .taskStarted(
                    TaskStarted(
                        taskID: row.taskID, attempt: row.attempt, serverID: server, pid: report.pid,
                        startedAt: report.startedAt ?? Date(timeIntervalSince1970: 0))))
        }
        switch report.state {
        case .running:
            break
        case .exited:
            let succeeded = report.exitCode == 0 && report.signal == nil
            events.append(
                .taskFinished(
                    TaskFinished(
                        taskID: row.taskID, attempt: row.attempt, serverID: server,
                        outcome: succeeded ? .succeeded : .failed, exitCode: report.exitCode, signal: report.signal,
                        failureClass: succeeded ? nil : .user, reason: report.reason, outputs: report.outputs,
                        endedAt: report.endedAt)))
        case .stopped:
            events.append(
                .taskFinished(
                    TaskFinished(
                        taskID: row.taskID, attempt: row.attempt, serverID: server, outcome: .cancelled,
                        exitCode: report.exitCode, signal: report.signal, reason: report.reason,
                        outputs: report.outputs, endedAt: report.endedAt)))
        case .failedToStart:
            events.append(
                .taskFinished(
                    TaskFinished(
                        taskID: row.taskID, attempt: row.attempt, serverID: server, outcome: .failed,
                        failureClass: .infrastructure, reason: report.reason, endedAt: report.endedAt)))
        }
        return events
    }
}
