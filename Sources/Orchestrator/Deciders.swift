import Domain
import EventStore
import Foundation
import Projections
import Wire

/// A command refused by a decider: nothing is appended. `message` is one line for the operator.
public struct Rejection: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable {
        /// No such task or server.
        case unknown
        /// The task already ended.
        case alreadyEnded
        /// The server still runs tasks and the command would abandon them.
        case tasksRunning
        /// An argument is out of range.
        case invalidArgument
        /// The command no longer applies to the row (another attempt, another state): nothing to do.
        case notApplicable
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

extension Decide {
/// What can be asked of one task. Each case is decided by ``Decide/task(_:given:)`` against the task's row alone.
public enum TaskCommand: Sendable, Equatable {
    /// An operator's cancel: a queued task ends `cancelled` at once; a placed one is stopped by the backend.
    case cancel(reason: String?)
    /// A start booked but not sent when its server stopped taking tasks (or it was cancelled): the booking is
    /// withdrawn and the task queued again.
    case withdraw(attempt: Int, server: ServerID, reason: String)
    /// A start sent but unanswered past its delivery deadline that the agent's complete inventory lacks: the agent
    /// never executes an expired request, so the attempt never ran; it is withdrawn.
    case expireStart(attempt: Int, server: ServerID)
    /// A running attempt whose process is gone (not in the agent's complete inventory), or whose server was
    /// unreachable past `lostAfter`: `lost`, then requeued under the retry policy.
    case lose(attempt: Int, reason: String, maxAttempts: Int)
    /// An agent's report of one attempt (``Reconciler/transitions(for:report:context:)``).
    case report(TaskStatusReport, context: Reconciler.Context)
    /// The agent refused a start (an error response to it). A refusal that proves the attempt never ran and that is
    /// no fault of the task (the agent's capacity guard, an expired delivery deadline) withdraws it: queued again
    /// without using a retry. Any other refusal is a failure to start (infrastructure, under the retry policy).
    case startRefused(attempt: Int, server: ServerID, code: String, message: String, maxAttempts: Int)
}
}

extension Decide {
/// What can be asked of one server. Decided by ``Decide/server(_:given:now:)`` against the server's row alone.
public enum ServerCommand: Sendable, Equatable {
    /// `max_tasks = 0`: no new tasks; running ones may finish until `deadline` (then they are stopped and requeued).
    case drain(deadline: Date?, reason: String?)
    /// Detach: at once when nothing runs; refused while tasks run unless `force` (then they are stopped now and
    /// requeued, and the server detaches when the last one ended).
    case detach(force: Bool)
    /// A new `max_tasks` (0–1,024): no new tasks past it; running ones are not stopped.
    case setCapacity(Int)
    /// The backend completes a requested detach once nothing is booked.
    case completeDetach
    /// The backend's liveness verdict from the answered (or unanswered) queries.
    case liveness(reachable: Bool, missed: Int)
    /// A measured clock skew, against `serve --max-clock-skew` (``Decide/health(skewMilliseconds:tolerance:)``).
    case health(skewMilliseconds: Int64?, tolerance: Duration)
}
}

/// The pure deciders: `decide(command, given: row) throws(Rejection) -> [DomainEvent]`. Every rule about what an
/// intent or an observation does to a task or a server lives here, once; services read the row, call the decider,
/// and append what it returns with the row's stream version expected (``CommandAppender``).
public enum Decide {
    /// The largest `max_tasks` a server may be given.
    public static let maximumMaxTasks = 1_024

    /// Decides a task command against the task's current row (`nil`: no such task).
    ///
    /// - Throws: ``Rejection`` `.unknown`, `.alreadyEnded` (a cancel of an ended task), `.notApplicable` (the row
    ///   moved on: another attempt, another state).
    public static func task(_ command: TaskCommand, given row: TaskRow?) throws(Rejection) -> [DomainEvent] {
        guard let row else { throw Rejection(.unknown, "no such task") }
        switch command {
        case .cancel(let reason):
            guard !row.status.isTerminal else {
                throw Rejection(.alreadyEnded, "\(row.taskID) already ended (\(row.status.rawValue)); nothing to cancel")
            }
            guard row.cancelRequestedAt == nil else { return [] }  // asked once already: one intent in the log
            return [.taskCancelRequested(TaskCancelRequested(taskID: row.taskID, reason: reason))]
        case .withdraw(let attempt, let server, let reason):
            guard row.attempt == attempt, row.serverID == server, row.status == .dispatching else {
                throw Rejection(.notApplicable, "\(row.taskID) attempt \(attempt) is not a booking waiting to be sent")
            }
            return [
                .taskDispatchWithdrawn(
                    TaskDispatchWithdrawn(taskID: row.taskID, attempt: attempt, serverID: server, reason: reason))
            ]
        case .expireStart(let attempt, let server):
            guard row.attempt == attempt, row.serverID == server,
                row.status == .starting || row.status == .dispatching
            else {
                throw Rejection(.notApplicable, "\(row.taskID) attempt \(attempt) is not a start in flight")
            }
            return [
                .taskDispatchWithdrawn(
                    TaskDispatchWithdrawn(
                        taskID: row.taskID, attempt: attempt, serverID: server,
                        reason: "the start request expired unanswered and the agent does not have the task"))
            ]
        case .lose(let attempt, let reason, let maxAttempts):
            guard row.attempt == attempt, !row.status.isTerminal, row.status != .queued else {
                throw Rejection(.notApplicable, "\(row.taskID) attempt \(attempt) is not live")
            }
            return Reconciler.lost(row, reason: reason, maxAttempts: maxAttempts)
        case .report(let report, let context):
            return Reconciler.transitions(for: row, report: report, context: context)
        case .startRefused(let attempt, let server, let code, let message, let maxAttempts):
            guard row.attempt == attempt, row.serverID == server,
                row.status == .starting || row.status == .dispatching
            else {
                throw Rejection(.notApplicable, "\(row.taskID) attempt \(attempt) is not a start in flight")
            }
            guard refusalWithdraws(code: code) else {
                return Reconciler.transitions(
                    for: row,
                    report: TaskStatusReport(
                        taskID: row.taskID, attempt: attempt, state: .failedToStart,
                        reason: "the agent refused the start: \(code): \(message)"),
                    context: Reconciler.Context(server: server, maxAttempts: maxAttempts))
            }
            return [
                .taskDispatchWithdrawn(
                    TaskDispatchWithdrawn(
                        taskID: row.taskID, attempt: attempt, serverID: server,
                        reason: "refused by \(server): \(code): \(message)"))
            ]
        }
    }

    /// Whether an agent's refusal of a start withdraws it (the attempt never ran and it is no fault of the task):
    /// `capacityExceeded` (the agent's capacity guard) and `expired` (delivered past its deadline, as from an agent
    /// whose clock is ahead). Any other code is a failure to start.
    public static func refusalWithdraws(code: String) -> Bool {
        code == WireError.Code.capacityExceeded.rawValue || code == WireError.Code.expired.rawValue
    }

    /// The expired-start rule (issue 17 part 3, on the monotonic clock): a start the agent's complete inventory lacks,
    /// sent `sentFor` ago, is past its delivery deadline plus its execution deadline plus 5 s, so the agent never
    /// executes it (it answers `expired`, its deadline being in its own time corrected by the measured skew, which
    /// falls due early, never late). Pure.
    public static func startExpired(sentFor: Duration, requestTimeout: Duration, executionSeconds: Int) -> Bool {
        sentFor > requestTimeout + .seconds(executionSeconds) + .seconds(5)
    }

    /// How long a server gets no new starts after it refused `refusals` starts in a row (issue 17 part 3: a refused
    /// start is not retried on the same server in a tight loop): 1 s, doubling to at most 60 s. `refusals` 0: none.
    public static func refusalBackoff(refusals: Int) -> Duration {
        guard refusals > 0 else { return .zero }
        return .seconds(min(60, 1 << min(refusals - 1, 6)))
    }

    /// A server's health from its measured clock skew (issue 17 part 3): `nil` when healthy, else the reason shown
    /// in `server list` (`clock skew 6m`). An unhealthy server gets no new tasks; its running tasks are left alone.
    ///
    /// - Parameters:
    ///   - skewMilliseconds: The agent's clock minus the backend's, as last measured (`nil`: not measured yet).
    ///   - tolerance: `serve --max-clock-skew`.
    public static func health(skewMilliseconds: Int64?, tolerance: Duration) -> String? {
        guard let skew = skewMilliseconds else { return nil }
        let limit = tolerance.components.seconds * 1000 + tolerance.components.attoseconds / 1_000_000_000_000_000
        guard skew.magnitude > UInt64(max(0, limit)) else { return nil }
        return "clock skew " + describeSkew(skew)
    }

    /// A skew in the largest unit it reaches, rounded to the nearest: `6m`, `-45s`, `3h`, `400d` (a measure is the
    /// true skew less the response's transit, so 359.9 s reads `6m`).
    static func describeSkew(_ milliseconds: Int64) -> String {
        let sign = milliseconds < 0 ? "-" : ""
        let seconds = (milliseconds.magnitude + 500) / 1000
        for (unit, letter) in [(UInt64(86_400), "d"), (3_600, "h"), (60, "m")] where seconds >= unit {
            return "\(sign)\((seconds + unit / 2) / unit)\(letter)"
        }
        return "\(sign)\(seconds)s"
    }

    /// Decides a server command against the server's current row (`nil`: not attached).
    ///
    /// - Parameter now: The wall-clock time, for deadlines (a drain deadline in the past stops tasks at once).
    /// - Throws: ``Rejection`` `.unknown`, `.tasksRunning` (detach without force while tasks run),
    ///   `.invalidArgument` (capacity out of range), `.notApplicable`.
    public static func server(_ command: ServerCommand, given row: ServerRow?, now: Date = Date()) throws(Rejection)
        -> [DomainEvent]
    {
        guard let row else { throw Rejection(.unknown, "no such server") }
        switch command {
        case .drain(let deadline, let reason):
            return [.serverDrainRequested(ServerDrainRequested(serverID: row.serverID, deadline: deadline, reason: reason))]
        case .detach(let force):
            if row.booked.isEmpty {
                return [
                    .serverDetachRequested(ServerDetachRequested(serverID: row.serverID, force: force)),
                    .serverDetached(ServerDetached(serverID: row.serverID)),
                ]
            }
            guard force else {
                throw Rejection(
                    .tasksRunning,
                    "\(row.serverID) runs \(row.booked.count) Touchstone task(s): drain it first, or detach --force "
                        + "to stop them now and requeue them elsewhere")
            }
            return [
                .serverDrainRequested(ServerDrainRequested(serverID: row.serverID, deadline: now, reason: "detach --force")),
                .serverDetachRequested(ServerDetachRequested(serverID: row.serverID, force: true)),
            ]
        case .setCapacity(let maxTasks):
            guard (0...maximumMaxTasks).contains(maxTasks) else {
                throw Rejection(.invalidArgument, "--max-tasks \(maxTasks) is out of range: 0 to \(maximumMaxTasks)")
            }
            return [.serverCapacitySet(ServerCapacitySet(serverID: row.serverID, maxTasks: maxTasks))]
        case .completeDetach:
            guard row.detachRequested != nil, row.booked.isEmpty, !row.detached else {
                throw Rejection(.notApplicable, "\(row.serverID) has no detach to complete")
            }
            return [.serverDetached(ServerDetached(serverID: row.serverID))]
        case .health(let skewMilliseconds, let tolerance):
            let verdict = health(skewMilliseconds: skewMilliseconds, tolerance: tolerance)
            // Recorded only when the verdict flips, so a drifting clock does not append an event per response.
            guard (row.unhealthy == nil) != (verdict == nil) else { return [] }
            return [.serverHealthChanged(ServerHealthChanged(serverID: row.serverID, unhealthy: verdict))]
        case .liveness(let reachable, let missed):
            guard row.reachable != reachable else { return [] }
            return [.serverLivenessChanged(ServerLivenessChanged(serverID: row.serverID, reachable: reachable, missedHeartbeats: missed))]
        }
    }
}

/// The one appender: reads a row with its stream version, decides, appends what was decided expecting that version,
/// and on a version conflict reads and decides again (at most `attempts` times).
public struct CommandAppender: Sendable {
    public let log: TouchstoneLog
    /// Decisions tried before a row that keeps changing is given up on.
    public var attempts: Int

    public init(log: TouchstoneLog, attempts: Int = 5) {
        self.log = log
        self.attempts = attempts
    }

    /// Decides and appends a task command.
    ///
    /// - Returns: The events appended (empty when the decider had nothing to do).
    /// - Throws: ``Rejection`` from the decider; ``EventStoreError`` from the log (`.wrongExpectedVersion` once the
    ///   attempts are used up).
    @discardableResult
    public func execute(_ command: Decide.TaskCommand, task: TaskID, metadata: EventMetadata) async throws -> [DomainEvent] {
        var lastError: EventStoreError?
        for _ in 0..<attempts {
            let row = try await log.taskRows([task])[task]
            let events = try Decide.task(command, given: row)
            guard let row, !events.isEmpty else { return events }
            do {
                try await log.append(events.map { .init($0, expectedVersion: .exact(row.streamVersion), metadata: metadata) })
                return events
            } catch {
                guard error.code == .wrongExpectedVersion else { throw error }
                lastError = error
            }
        }
        throw lastError ?? EventStoreError(.wrongExpectedVersion, "task \(task) kept changing")
    }

    /// Decides and appends a server command; every event is appended under the server stream's expected version.
    ///
    /// - Returns: The events appended.
    /// - Throws: As ``execute(_:task:metadata:)``.
    @discardableResult
    public func execute(_ command: Decide.ServerCommand, server: ServerID, metadata: EventMetadata) async throws -> [DomainEvent] {
        var lastError: EventStoreError?
        for _ in 0..<attempts {
            let row = try await log.serverRow(server)
            let events = try Decide.server(command, given: row)
            guard let row, !events.isEmpty else { return events }
            do {
                try await log.append(
                    events.map { .init($0, metadata: metadata) },
                    conditions: [StreamName.server(server): row.streamVersion])
                return events
            } catch {
                guard error.code == .wrongExpectedVersion else { throw error }
                lastError = error
            }
        }
        throw lastError ?? EventStoreError(.wrongExpectedVersion, "server \(server) kept changing")
    }
}
