import Foundation

/// A payload of a domain event: a fixed type string and schema version, stored as JSON.
public protocol EventPayload: Codable, Sendable, Equatable {
    /// The stable type string stored in the log, e.g. `task.submitted`.
    static var eventType: String { get }
    /// The current schema version of this payload.
    static var schemaVersion: Int { get }
}

/// Every fact Touchstone records. Cases are past tense and never edited once shipped; a breaking change adds a schema
/// version and an upcast in ``DomainEventCodec``.
public enum DomainEvent: Sendable, Equatable {
    case serverAttached(ServerAttached)  // "server.attached" v1
    case serverHelloReceived(ServerHelloReceived)  // "server.hello" v1
    case taskSubmitted(TaskSubmitted)  // "task.submitted" v1
    case taskDispatched(TaskDispatched)  // "task.dispatched" v1
    case taskStarted(TaskStarted)  // "task.started" v1
    case taskFinished(TaskFinished)  // "task.finished" v1
    case requestSent(RequestSent)  // "channel.request.sent" v1
    case responseReceived(ResponseReceived)  // "channel.response.received" v1
    case responseRejected(ResponseRejected)  // "channel.response.rejected" v1
    case serverCapacitySet(ServerCapacitySet)  // "server.capacity-set" v1
    case serverDrainRequested(ServerDrainRequested)  // "server.drain-requested" v1
    case serverDetachRequested(ServerDetachRequested)  // "server.detach-requested" v1
    case serverDetached(ServerDetached)  // "server.detached" v1
    case serverLivenessChanged(ServerLivenessChanged)  // "server.liveness-changed" v1
    case taskDispatchWithdrawn(TaskDispatchWithdrawn)  // "task.dispatch-withdrawn" v1
    case taskRequeued(TaskRequeued)  // "task.requeued" v1
    case serverGPUsObserved(ServerGPUsObserved)  // "server.gpus-observed" v1
    case transportFailed(TransportFailed)  // "channel.transport-failed" v1
    case transfer(TransferEvent)  // "transfer.started" | "transfer.completed" | "transfer.failed" | "transfer.rejected" v1
}

// MARK: Server lifecycle

/// An operator attached (or re-attached) a server with a task limit.
public struct ServerAttached: EventPayload {
    public static let eventType = "server.attached"
    public static let schemaVersion = 1
    public var serverID: ServerID
    /// The most Touchstone tasks the server may run at once; 0 drains it.
    public var maxTasks: Int
    /// Number of queue pairs (channels); channel 0 is control.
    public var channels: Int

    public init(serverID: ServerID, maxTasks: Int, channels: Int) {
        self.serverID = serverID
        self.maxTasks = maxTasks
        self.channels = channels
    }
}

/// The agent answered `hello` with its inventory (observed state).
public struct ServerHelloReceived: EventPayload {
    public static let eventType = "server.hello"
    public static let schemaVersion = 1
    public var serverID: ServerID
    public var agentVersion: String
    /// The agent's wall clock when it answered.
    public var agentTime: Date
    /// Agent clock minus backend clock, in milliseconds (positive: the agent is ahead).
    public var clockSkewMilliseconds: Int64
    /// Tasks the agent holds as running, by (task, attempt).
    public var runningTasks: [TaskAttempt]
    public var gpuCount: Int
    /// The GPUs found, with their use by others; `nil` in events recorded before GPU inventory existed.
    public var gpus: [GPUDevice]?

    public init(
        serverID: ServerID, agentVersion: String, agentTime: Date, clockSkewMilliseconds: Int64,
        runningTasks: [TaskAttempt], gpuCount: Int, gpus: [GPUDevice]? = nil
    ) {
        self.gpus = gpus
        self.serverID = serverID
        self.agentVersion = agentVersion
        self.agentTime = agentTime
        self.clockSkewMilliseconds = clockSkewMilliseconds
        self.runningTasks = runningTasks
        self.gpuCount = gpuCount
    }
}

/// One attempt of one task.
public struct TaskAttempt: Codable, Sendable, Hashable, Comparable, CustomStringConvertible {
    public var taskID: TaskID
    /// 1 for the first placement.
    public var attempt: Int

    public init(taskID: TaskID, attempt: Int) {
        self.taskID = taskID
        self.attempt = attempt
    }

    public var description: String { "\(taskID)#\(attempt)" }
    public static func < (lhs: Self, rhs: Self) -> Bool { (lhs.taskID, lhs.attempt) < (rhs.taskID, rhs.attempt) }
}

// MARK: Tasks

/// An operator submitted a task (desired state).
public struct TaskSubmitted: EventPayload {
    public static let eventType = "task.submitted"
    public static let schemaVersion = 1
    public var taskID: TaskID
    public var spec: TaskSpec

    public init(taskID: TaskID, spec: TaskSpec) {
        self.taskID = taskID
        self.spec = spec
    }
}

/// The scheduler booked a place for an attempt on a server and handed it to a channel.
public struct TaskDispatched: EventPayload {
    public static let eventType = "task.dispatched"
    public static let schemaVersion = 1
    public var taskID: TaskID
    public var attempt: Int
    public var serverID: ServerID
    /// The `startTask` request that carries it; the next free task channel sends it (see `channel.request.sent`).
    public var requestID: RequestID
    /// The GPU indices booked for the attempt (`nil`: none; absent in events recorded before GPU booking).
    public var gpuIndices: [Int]?

    public init(taskID: TaskID, attempt: Int, serverID: ServerID, requestID: RequestID, gpuIndices: [Int]? = nil) {
        self.gpuIndices = gpuIndices
        self.taskID = taskID
        self.attempt = attempt
        self.serverID = serverID
        self.requestID = requestID
    }
}

/// The agent confirmed that the attempt's process is running (observed state).
public struct TaskStarted: EventPayload {
    public static let eventType = "task.started"
    public static let schemaVersion = 1
    public var taskID: TaskID
    public var attempt: Int
    public var serverID: ServerID
    /// The process ID on the agent's host.
    public var pid: Int32?
    /// When the agent started it, by the agent's clock.
    public var startedAt: Date

    public init(taskID: TaskID, attempt: Int, serverID: ServerID, pid: Int32?, startedAt: Date) {
        self.taskID = taskID
        self.attempt = attempt
        self.serverID = serverID
        self.pid = pid
        self.startedAt = startedAt
    }
}

/// How an attempt ended.
public enum TaskOutcome: String, Codable, Sendable, Equatable, CaseIterable {
    case succeeded, failed, cancelled, lost
}

/// Whose fault a failure was: the task's own (`user`) or the platform's (`infrastructure`, retried).
public enum FailureClass: String, Codable, Sendable, Equatable {
    case user, infrastructure
}

/// An attempt ended (observed by the agent, or decided by the backend for `lost`).
public struct TaskFinished: EventPayload {
    public static let eventType = "task.finished"
    public static let schemaVersion = 1
    public var taskID: TaskID
    public var attempt: Int
    public var serverID: ServerID?
    public var outcome: TaskOutcome
    public var exitCode: Int32?
    /// The signal that ended the process, when one did.
    public var signal: Int32?
    public var failureClass: FailureClass?
    /// One line for operators, e.g. "exit code 1" or "could not start: no such file".
    public var reason: String?
    /// Small output files collected inline: relative path → UTF-8 text (at most 64 KiB each).
    public var outputs: [String: String]
    /// When the process ended, by the agent's clock.
    public var endedAt: Date?

    public init(
        taskID: TaskID, attempt: Int, serverID: ServerID?, outcome: TaskOutcome, exitCode: Int32? = nil,
        signal: Int32? = nil, failureClass: FailureClass? = nil, reason: String? = nil, outputs: [String: String] = [:],
        endedAt: Date? = nil
    ) {
        self.taskID = taskID
        self.attempt = attempt
        self.serverID = serverID
        self.outcome = outcome
        self.exitCode = exitCode
        self.signal = signal
        self.failureClass = failureClass
        self.reason = reason
        self.outputs = outputs
        self.endedAt = endedAt
    }
}

// MARK: Channels

/// The backend put a request on a channel's request queue.
public struct RequestSent: EventPayload {
    public static let eventType = "channel.request.sent"
    public static let schemaVersion = 1
    public var channel: ChannelID
    public var requestID: RequestID
    public var epoch: Int64
    public var sequence: Int64
    /// The command's name, e.g. `startTask`.
    public var command: String
    /// The task the request is about, when it is about one.
    public var taskID: TaskID?
    public var expiresAt: Date
    /// The queue's message ID.
    public var messageID: String

    public init(
        channel: ChannelID, requestID: RequestID, epoch: Int64, sequence: Int64, command: String, taskID: TaskID?,
        expiresAt: Date, messageID: String
    ) {
        self.channel = channel
        self.requestID = requestID
        self.epoch = epoch
        self.sequence = sequence
        self.command = command
        self.taskID = taskID
        self.expiresAt = expiresAt
        self.messageID = messageID
    }
}

/// A response that matched the outstanding request.
public struct ResponseReceived: EventPayload {
    public static let eventType = "channel.response.received"
    public static let schemaVersion = 1
    public var channel: ChannelID
    public var requestID: RequestID
    public var epoch: Int64
    /// `ok`, or the agent's error code (e.g. `badRequest`, `expired`).
    public var status: String
    /// The agent's error message, when status is not `ok`.
    public var message: String?
    public var agentTime: Date
    public var messageID: String

    public init(
        channel: ChannelID, requestID: RequestID, epoch: Int64, status: String, message: String?, agentTime: Date,
        messageID: String
    ) {
        self.channel = channel
        self.requestID = requestID
        self.epoch = epoch
        self.status = status
        self.message = message
        self.agentTime = agentTime
        self.messageID = messageID
    }
}

/// A message on a response queue that could not be accepted: malformed, for another request, or another epoch.
public struct ResponseRejected: EventPayload {
    public static let eventType = "channel.response.rejected"
    public static let schemaVersion = 1
    public var channel: ChannelID
    public var messageID: String
    /// Why: `malformed`, `unexpectedRequestID`, `staleEpoch`.
    public var reason: String
    /// The request ID the message named, if it could be read.
    public var requestID: RequestID?
    /// The first 200 bytes of the body, for debugging.
    public var bodyPrefix: String

    public init(channel: ChannelID, messageID: String, reason: String, requestID: RequestID?, bodyPrefix: String) {
        self.channel = channel
        self.messageID = messageID
        self.reason = reason
        self.requestID = requestID
        self.bodyPrefix = bodyPrefix
    }
}

// MARK: Server lifecycle (capacity, drain, detach, liveness)

/// An operator changed a server's task limit.
public struct ServerCapacitySet: EventPayload {
    public static let eventType = "server.capacity-set"
    public static let schemaVersion = 1
    public var serverID: ServerID
    /// The new limit; 0 drains the server.
    public var maxTasks: Int

    public init(serverID: ServerID, maxTasks: Int) {
        self.serverID = serverID
        self.maxTasks = maxTasks
    }
}

/// An operator drained a server: `maxTasks` becomes 0; it stays draining until every task on it is observed stopped.
public struct ServerDrainRequested: EventPayload {
    public static let eventType = "server.drain-requested"
    public static let schemaVersion = 1
    public var serverID: ServerID
    /// When tasks still running are stopped (grace period, then kill) and requeued elsewhere; `nil` waits forever.
    public var deadline: Date?
    public var reason: String?

    public init(serverID: ServerID, deadline: Date?, reason: String?) {
        self.serverID = serverID
        self.deadline = deadline
        self.reason = reason
    }
}

/// An operator asked to detach a server; with `force`, after a drain with a zero deadline.
public struct ServerDetachRequested: EventPayload {
    public static let eventType = "server.detach-requested"
    public static let schemaVersion = 1
    public var serverID: ServerID
    public var force: Bool

    public init(serverID: ServerID, force: Bool) {
        self.serverID = serverID
        self.force = force
    }
}

/// The server was detached: nothing of ours runs on it and it takes no tasks until attached again.
public struct ServerDetached: EventPayload {
    public static let eventType = "server.detached"
    public static let schemaVersion = 1
    public var serverID: ServerID

    public init(serverID: ServerID) { self.serverID = serverID }
}

/// The backend's liveness verdict on a server changed.
public struct ServerLivenessChanged: EventPayload {
    public static let eventType = "server.liveness-changed"
    public static let schemaVersion = 1
    public var serverID: ServerID
    /// False: unreachable (missed heartbeats); true: answering again.
    public var reachable: Bool
    /// Consecutive heartbeats missed when it became unreachable.
    public var missedHeartbeats: Int

    public init(serverID: ServerID, reachable: Bool, missedHeartbeats: Int) {
        self.serverID = serverID
        self.reachable = reachable
        self.missedHeartbeats = missedHeartbeats
    }
}

/// A booking was withdrawn before its start request was sent (the server began draining, or its capacity was cut,
/// after the booking): the task is queued again and the attempt never ran.
public struct TaskDispatchWithdrawn: EventPayload {
    public static let eventType = "task.dispatch-withdrawn"
    public static let schemaVersion = 1
    public var taskID: TaskID
    public var attempt: Int
    public var serverID: ServerID
    public var reason: String

    public init(taskID: TaskID, attempt: Int, serverID: ServerID, reason: String) {
        self.taskID = taskID
        self.attempt = attempt
        self.serverID = serverID
        self.reason = reason
    }
}

/// A task whose attempt failed for an infrastructure reason is queued again for another attempt.
public struct TaskRequeued: EventPayload {
    public static let eventType = "task.requeued"
    public static let schemaVersion = 1
    public var taskID: TaskID
    /// The attempt that failed.
    public var afterAttempt: Int
    public var reason: String

    public init(taskID: TaskID, afterAttempt: Int, reason: String) {
        self.taskID = taskID
        self.afterAttempt = afterAttempt
        self.reason = reason
    }
}

/// The agent's GPU inventory changed (count, or use by processes that are not ours), seen in a heartbeat.
public struct ServerGPUsObserved: EventPayload {
    public static let eventType = "server.gpus-observed"
    public static let schemaVersion = 1
    public var serverID: ServerID
    public var gpus: [GPUDevice]
    /// Why the list may be incomplete: "nvidia-smi not found", a parse error; `nil` when read cleanly.
    public var problem: String?

    public init(serverID: ServerID, gpus: [GPUDevice], problem: String?) {
        self.serverID = serverID
        self.gpus = gpus
        self.problem = problem
    }
}

/// A queue operation of the backend failed: a queue that does not exist, refused credentials, an oversize or
/// malformed message, a server answering HTML. The error's code and one-line message, never a secret.
public struct TransportFailed: EventPayload {
    public static let eventType = "channel.transport-failed"
    public static let schemaVersion = 1
    public var channel: ChannelID
    /// `send`, `receive` or `delete`.
    public var operation: String
    /// The queue error's code, e.g. `queueDoesNotExist`, `invalidSignature`, `serviceUnavailable`.
    public var code: String
    public var message: String

    public init(channel: ChannelID, operation: String, code: String, message: String) {
        self.channel = channel
        self.operation = operation
        self.code = code
        self.message = message
    }
}
