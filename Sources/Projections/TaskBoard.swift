import Domain
import Foundation

/// Where a task is: `queued → dispatching → starting → running → succeeded | failed | cancelled | lost`.
public enum TaskStatus: String, Codable, Sendable, Equatable, CaseIterable {
    /// Waiting for a place.
    case queued
    /// Booked on a server; the start request is not on the queue yet.
    case dispatching
    /// The start request was sent and not acknowledged: never shown as running.
    case starting
    /// The agent confirmed the process runs.
    case running
    case succeeded, failed, cancelled, lost

    /// Whether the task has ended for good.
    public var isTerminal: Bool {
        switch self {
        case .succeeded, .failed, .cancelled, .lost: return true
        case .queued, .dispatching, .starting, .running: return false
        }
    }
}

/// One task as operators see it.
public struct TaskRow: Codable, Sendable, Equatable {
    public var taskID: TaskID
    public var name: String?
    public var command: [String]
    public var gpus: Int
    /// Higher runs first.
    public var priority: Int = 0
    public var status: TaskStatus
    /// The current attempt: 0 before the first dispatch.
    public var attempt: Int
    public var serverID: ServerID?
    public var channel: Int?
    public var requestID: RequestID?
    public var pid: Int32?
    public var submittedAt: Date
    public var dispatchedAt: Date?
    /// The delivery deadline of the latest `startTask` sent for the current attempt: the agent never executes it
    /// after that instant (by its own clock).
    public var startDeliverBy: Date?
    /// By the agent's clock.
    public var startedAt: Date?
    /// When the log learned that the current attempt runs (the backend's clock): a complete inventory asked for
    /// before this instant may not list it yet.
    public var runningObservedAt: Date?
    /// By the agent's clock when it reported the end, else the backend's.
    public var finishedAt: Date?
    public var exitCode: Int32?
    public var signal: Int32?
    public var failureClass: FailureClass?
    public var reason: String?
    /// Small output files collected when the task ended: path → text.
    public var outputs: [String: String]
    /// GPU indices booked for the current attempt.
    public var gpuIndices: [Int] = []
    /// When an operator asked to cancel the task; a placed task is then stopped, and ends `cancelled`.
    public var cancelRequestedAt: Date?
    /// The version of the `task/<id>` stream this row reflects: appends decided from this row expect it.
    public var streamVersion: Int64 = 0
    /// The one server the task may run on (`task submit --server`), `nil` for any.
    public var pinnedServer: ServerID?
    /// Labels a server must carry, label → value (`--constraint`); `nil` when none (and in rows stored before
    /// constraints existed).
    public var constraints: [String: String]?
    /// Attempts withdrawn before they ran (a start never sent, expired unexecuted, or refused by the agent's capacity
    /// guard): they do not count against the retry policy. `nil` when none (and in rows stored before it existed).
    public var attemptsNotRun: Int?

    /// Attempts that ran or may have run: what the retry policy counts.
    public var attemptsUsed: Int { attempt - (attemptsNotRun ?? 0) }
}

/// Per-task state, derived from submissions, dispatches, requests and agent reports.
public struct TaskBoard: Projection {
    public static let name = "task_board"
    public var rows: [String: TaskRow] = [:]
    public init() {}

    /// The row of one task.
    public subscript(task: TaskID) -> TaskRow? { rows[task.rawValue] }

    public static func keys(touchedBy event: DomainEvent) -> [String] {
        switch event {
        case .taskSubmitted(let e): return [e.taskID.rawValue]
        case .taskDispatched(let e): return [e.taskID.rawValue]
        case .taskStarted(let e): return [e.taskID.rawValue]
        case .taskFinished(let e): return [e.taskID.rawValue]
        case .requestSent(let e): return e.command == "startTask" ? e.taskID.map { [$0.rawValue] } ?? [] : []
        case .taskDispatchWithdrawn(let e): return [e.taskID.rawValue]
        case .taskRequeued(let e): return [e.taskID.rawValue]
        case .taskCancelRequested(let e): return [e.taskID.rawValue]
        case .taskStartSending(let e): return [e.taskID.rawValue]
        case .serverAttached, .serverHelloReceived, .responseReceived, .responseRejected, .serverCapacitySet,
            .serverDrainRequested, .serverDetachRequested, .serverDetached, .serverLivenessChanged, .serverGPUsObserved, .transportFailed, .channelDesyncDetected, .channelQueuesDrained,
            .unrecognisedTaskFound, .serverCapacityViolationRefused, .serverHealthChanged, .transfer, .agentInstance, .backend, .garbageCollected, .keys:
            return []
        }
    }

    public mutating func apply(_ recorded: RecordedEvent<DomainEvent>) {
        applyEvent(recorded)
        if recorded.stream.hasPrefix("task/") {
            rows[String(recorded.stream.dropFirst(5))]?.streamVersion = recorded.version
        }
    }

    private mutating func applyEvent(_ recorded: RecordedEvent<DomainEvent>) {
        switch recorded.event {
        case .taskSubmitted(let e):
            rows[e.taskID.rawValue] = TaskRow(
                taskID: e.taskID, name: e.spec.name, command: e.spec.command, gpus: e.spec.gpus,
                priority: e.spec.priority, status: .queued, attempt: 0, submittedAt: recorded.recordedAt, outputs: [:],
                pinnedServer: e.spec.server, constraints: e.spec.constraints.isEmpty ? nil : e.spec.constraints)
        case .taskDispatched(let e):
            guard var row = rows[e.taskID.rawValue] else { return }
            row.status = .dispatching
            row.attempt = e.attempt
            row.serverID = e.serverID
            row.channel = nil
            row.requestID = e.requestID
            row.dispatchedAt = recorded.recordedAt
            row.startDeliverBy = nil
            row.runningObservedAt = nil
            row.pid = nil
            row.startedAt = nil
            row.finishedAt = nil
            row.exitCode = nil
            row.signal = nil
            row.failureClass = nil
            row.reason = nil
            row.outputs = [:]
            row.gpuIndices = e.gpuIndices ?? []
            rows[e.taskID.rawValue] = row
        case .requestSent(let e):
            guard let task = e.taskID, e.command == "startTask", var row = rows[task.rawValue],
                row.requestID == e.requestID, row.status == .dispatching || row.status == .starting
            else { return }
            // Sent, not acknowledged: `starting` until the agent reports the process (never shown as running).
            row.status = .starting
            row.startDeliverBy = e.expiresAt
            row.channel = e.channel.index
            rows[task.rawValue] = row
        case .taskStarted(let e):
            guard var row = rows[e.taskID.rawValue], row.attempt == e.attempt, !row.status.isTerminal else { return }
            row.status = .running
            row.runningObservedAt = recorded.recordedAt
            row.pid = e.pid
            row.startedAt = e.startedAt
            rows[e.taskID.rawValue] = row
        case .taskFinished(let e):
            guard var row = rows[e.taskID.rawValue], row.attempt == e.attempt, !row.status.isTerminal else { return }
            switch e.outcome {
            case .succeeded: row.status = .succeeded
            case .failed: row.status = .failed
            case .cancelled: row.status = .cancelled
            case .lost: row.status = .lost
            }
            row.exitCode = e.exitCode
            row.signal = e.signal
            row.failureClass = e.failureClass
            row.reason = e.reason
            row.outputs = e.outputs
            row.finishedAt = e.endedAt ?? recorded.recordedAt
            rows[e.taskID.rawValue] = row
        case .taskDispatchWithdrawn(let e):
            guard var row = rows[e.taskID.rawValue], row.attempt == e.attempt,
                row.status == .dispatching || row.status == .starting
            else { return }
            row.status = .queued
            row.serverID = nil
            row.channel = nil
            row.requestID = nil
            row.gpuIndices = []
            row.reason = e.reason
            row.attemptsNotRun = (row.attemptsNotRun ?? 0) + 1
            Self.settleCancel(&row, at: recorded.recordedAt)
            rows[e.taskID.rawValue] = row
        case .taskRequeued(let e):
            guard var row = rows[e.taskID.rawValue], row.attempt == e.afterAttempt,
                row.status == .failed || row.status == .lost
            else { return }
            row.status = .queued
            row.serverID = nil
            row.channel = nil
            row.requestID = nil
            row.pid = nil
            row.gpuIndices = []
            row.reason = e.reason
            Self.settleCancel(&row, at: recorded.recordedAt)
            rows[e.taskID.rawValue] = row
        case .taskStartSending(let e):
            guard var row = rows[e.taskID.rawValue], row.attempt == e.attempt, row.requestID == e.requestID,
                row.status == .dispatching || row.status == .starting
            else { return }
            // Sent, not acknowledged: `starting` until the agent reports the process (never shown as running).
            row.status = .starting
            row.channel = e.channel
            row.startDeliverBy = e.expiresAt
            rows[e.taskID.rawValue] = row
        case .taskCancelRequested(let e):
            guard var row = rows[e.taskID.rawValue], !row.status.isTerminal else { return }
            row.cancelRequestedAt = recorded.recordedAt
            row.reason = "cancel requested" + (e.reason.map { ": \($0)" } ?? "")
            Self.settleCancel(&row, at: recorded.recordedAt)
            rows[e.taskID.rawValue] = row
        case .serverAttached, .serverHelloReceived, .responseReceived, .responseRejected, .serverCapacitySet,
            .serverDrainRequested, .serverDetachRequested, .serverDetached, .serverLivenessChanged, .serverGPUsObserved, .transportFailed, .channelDesyncDetected, .channelQueuesDrained,
            .unrecognisedTaskFound, .serverCapacityViolationRefused, .serverHealthChanged, .transfer, .agentInstance, .backend, .garbageCollected, .keys:
            break
        }
    }

    /// A queued task whose cancel was requested ends `cancelled` (a placed one first has to be stopped).
    private static func settleCancel(_ row: inout TaskRow, at time: Date) {
        guard row.cancelRequestedAt != nil, row.status == .queued else { return }
        row.status = .cancelled
        row.finishedAt = time
        row.reason = (row.reason.map { $0 + "; " } ?? "") + "cancelled before it ran"
    }
}
