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
    case channelDesyncDetected(ChannelDesyncDetected)  // "channel.desync-detected" v1
    case channelQueuesDrained(ChannelQueuesDrained)  // "channel.queues-drained" v1
    case unrecognisedTaskFound(UnrecognisedTaskFound)  // "server.unrecognised-task" v1
    case serverCapacityViolationRefused(ServerCapacityViolationRefused)  // "server.capacity-violation-refused" v1
    case serverHealthChanged(ServerHealthChanged)  // "server.health-changed" v1
    case taskCancelRequested(TaskCancelRequested)  // "task.cancel-requested" v1
    case taskStartSending(TaskStartSending)  // "task.start-sending" v1
    case transfer(TransferEvent)  // "transfer.started" | "transfer.completed" | "transfer.failed" | "transfer.rejected" v1
    case keys(KeyEvent)  // "server.agent-key-pinned" | "keys.backend-rotated" v1
    case agentInstance(AgentInstanceEvent)  // "server.agent-instance-changed" | "server.agent-instance-fenced" v1
    case backend(BackendLifecycleEvent)  // "backend.started" | "backend.stopped" v1
    case garbageCollected(GarbageCollected)  // "maintenance.gc-completed" v1
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
    /// The server's labels, label → value (`server attach --label gpu=a100`), matched by tasks' constraints; `nil`
    /// (absent) in payloads written before labels existed, and when none were given.
    public var labels: [String: String]?

    public init(serverID: ServerID, maxTasks: Int, channels: Int, labels: [String: String]? = nil) {
        self.serverID = serverID
        self.maxTasks = maxTasks
        self.channels = channels
        self.labels = labels
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

/// Whose fault a failure was: the task's own (`user`), the platform's (`infrastructure`, retried), or the task asked
/// for what the agent's own policy forbids (`policy`: an image, the process runtime, root; not retried).
public enum FailureClass: String, Codable, Sendable, Equatable {
    case user, infrastructure, policy
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
    /// The delivery deadline: the agent does not execute the request after it.
    public var expiresAt: Date
    /// The execution deadline, seconds after delivery (absent in events of older builds: 30).
    public var executionSeconds: Int?
    /// The queue's message ID.
    public var messageID: String

    public init(
        channel: ChannelID, requestID: RequestID, epoch: Int64, sequence: Int64, command: String, taskID: TaskID?,
        expiresAt: Date, executionSeconds: Int? = nil, messageID: String
    ) {
        self.executionSeconds = executionSeconds
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
    /// Why: `malformed`, `unexpectedRequestID`, `staleEpoch`, `duplicate` (a second answer to a request already
    /// answered in this epoch: recorded, never a desync), `badSignature` (not signed by the agent's pinned key), or
    /// `refused:unauthenticated` / `refused:replayed` (the agent's signed refusal of a forged or replayed request).
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

// MARK: Recovery (desync, queue drain, cleanup)

/// The backend found its channel out of sync with the agent: a response with an unexpected request ID or an older
/// epoch, or an outstanding request left unanswered past its deadline. A queue drain follows.
public struct ChannelDesyncDetected: EventPayload {
    public static let eventType = "channel.desync-detected"
    public static let schemaVersion = 1
    public var channel: ChannelID
    /// The channel's epoch when the desync was seen.
    public var epoch: Int64
    /// `unexpectedRequestID`, `staleEpoch`, or `unanswered` (no response by the request's deadline).
    public var reason: String
    /// The request the backend was waiting for, if any.
    public var expectedRequestID: RequestID?
    /// The request ID and epoch the offending response carried, if one did.
    public var receivedRequestID: RequestID?
    public var receivedEpoch: Int64?
    /// The offending message's queue message ID, if one did.
    public var messageID: String?

    public init(
        channel: ChannelID, epoch: Int64, reason: String, expectedRequestID: RequestID?,
        receivedRequestID: RequestID? = nil, receivedEpoch: Int64? = nil, messageID: String? = nil
    ) {
        self.channel = channel
        self.epoch = epoch
        self.reason = reason
        self.expectedRequestID = expectedRequestID
        self.receivedRequestID = receivedRequestID
        self.receivedEpoch = receivedEpoch
        self.messageID = messageID
    }
}

/// One message removed from a queue by a drain.
public struct DrainedMessage: Codable, Sendable, Equatable {
    /// The queue's message ID.
    public var messageID: String
    /// What it was, e.g. `request startTask 0190… epoch 3` or `malformed: {"x…`.
    public var summary: String

    public init(messageID: String, summary: String) {
        self.messageID = messageID
        self.summary = summary
    }
}

/// The backend drained a channel's request and response queues by receive-and-delete and moved the channel to a new
/// epoch; every message of the old epoch that still arrives is stale. A `sync` with the agent follows.
public struct ChannelQueuesDrained: EventPayload {
    public static let eventType = "channel.queues-drained"
    public static let schemaVersion = 1
    public var channel: ChannelID
    public var fromEpoch: Int64
    public var toEpoch: Int64
    /// Every message removed from the request queue (requests the agent had not yet taken).
    public var requests: [DrainedMessage]
    /// Every message removed from the response queue.
    public var responses: [DrainedMessage]

    public init(
        channel: ChannelID, fromEpoch: Int64, toEpoch: Int64, requests: [DrainedMessage], responses: [DrainedMessage]
    ) {
        self.channel = channel
        self.fromEpoch = fromEpoch
        self.toEpoch = toEpoch
        self.requests = requests
        self.responses = responses
    }
}

/// Cleanup: an agent runs a labelled task attempt that the log does not hold as live on that server (unknown, ended,
/// superseded by a later attempt, or placed elsewhere). The backend stops and removes it. Unlabelled work is never
/// reported by an agent, so it is never the subject of this event.
public struct UnrecognisedTaskFound: EventPayload {
    public static let eventType = "server.unrecognised-task"
    public static let schemaVersion = 1
    public var serverID: ServerID
    public var taskID: TaskID
    public var attempt: Int
    /// Why it is not recognised, e.g. `task is lost in the log`, `no such task`.
    public var reason: String

    public init(serverID: ServerID, taskID: TaskID, attempt: Int, reason: String) {
        self.serverID = serverID
        self.taskID = taskID
        self.attempt = attempt
        self.reason = reason
    }
}

/// An agent's own capacity guard refused a start (issue 17 part 1): it would have run more attempts than the agent's
/// last known `max_tasks`, or used a GPU an attempt there holds. The backend's view of the server was wrong (a bug, a
/// hand-edited database, a restored backup): the task is queued again without using up a retry, the server gets no
/// new starts for a backoff, and the server is reconciled.
public struct ServerCapacityViolationRefused: EventPayload {
    public static let eventType = "server.capacity-violation-refused"
    public static let schemaVersion = 1
    public var serverID: ServerID
    public var taskID: TaskID
    public var attempt: Int
    /// The agent's one-line reason.
    public var message: String
    /// The backend's view the start carried: `max_tasks`, booked GPU indices, server stream version.
    public var maxTasks: Int?
    public var bookedGPUs: [Int]?
    public var serverVersion: Int64?

    public init(
        serverID: ServerID, taskID: TaskID, attempt: Int, message: String, maxTasks: Int? = nil,
        bookedGPUs: [Int]? = nil, serverVersion: Int64? = nil
    ) {
        self.serverID = serverID
        self.taskID = taskID
        self.attempt = attempt
        self.message = message
        self.maxTasks = maxTasks
        self.bookedGPUs = bookedGPUs
        self.serverVersion = serverVersion
    }
}

/// The backend's health verdict on a server changed (issue 17 part 3): `unhealthy` names why (`clock skew 6m`); an
/// unhealthy server gets no new tasks, its running tasks are left alone. `nil`: healthy again.
public struct ServerHealthChanged: EventPayload {
    public static let eventType = "server.health-changed"
    public static let schemaVersion = 1
    public var serverID: ServerID
    public var unhealthy: String?

    public init(serverID: ServerID, unhealthy: String?) {
        self.serverID = serverID
        self.unhealthy = unhealthy
    }
}

/// An operator asked to cancel a task (an intent: it holds while the backend is down and is carried out when it
/// runs). A queued task is cancelled at once; a placed one is stopped on its server and ends `cancelled`; a start
/// not yet sent is withdrawn.
public struct TaskCancelRequested: EventPayload {
    public static let eventType = "task.cancel-requested"
    public static let schemaVersion = 1
    public var taskID: TaskID
    public var reason: String?

    public init(taskID: TaskID, reason: String?) {
        self.taskID = taskID
        self.reason = reason
    }
}

/// The backend is about to put a start on a channel: appended to the task's stream, expecting the version it decided
/// on, *before* the send. A withdrawal or cancel decided concurrently from the same version makes one of the two
/// appends fail, so a start is never sent for an attempt that was withdrawn. Carries the delivery deadline the
/// request will have.
public struct TaskStartSending: EventPayload {
    public static let eventType = "task.start-sending"
    public static let schemaVersion = 1
    public var taskID: TaskID
    public var attempt: Int
    public var requestID: RequestID
    public var serverID: ServerID
    public var channel: Int
    /// The request's delivery deadline (`expiresAt`): the agent never executes it later.
    public var expiresAt: Date

    public init(taskID: TaskID, attempt: Int, requestID: RequestID, serverID: ServerID, channel: Int, expiresAt: Date) {
        self.taskID = taskID
        self.attempt = attempt
        self.requestID = requestID
        self.serverID = serverID
        self.channel = channel
        self.expiresAt = expiresAt
    }
}

/// One run of `touchstone gc` (issue 15): what it removed from the backend's state directory under the retention
/// policy, and how many bytes that freed. Recorded even when nothing was removed, so every run is in the log.
public struct GarbageCollected: EventPayload {
    public static let eventType = "maintenance.gc-completed"
    public static let schemaVersion = 1

    /// One removed directory or file, relative to the state directory (`logs/tsk-…`, `inputs/<sha256>`).
    public struct Removal: Codable, Sendable, Equatable {
        /// `input`, `artifacts` or `logs`.
        public var kind: String
        public var path: String
        /// Bytes of the files under it.
        public var bytes: Int64

        public init(kind: String, path: String, bytes: Int64) {
            self.kind = kind
            self.path = path
            self.bytes = bytes
        }
    }

    /// The policy applied: files of tasks ended more than this many days ago are removed.
    public var retentionDays: Int
    public var removed: [Removal]
    /// The sum of the removals' bytes.
    public var bytesFreed: Int64

    public init(retentionDays: Int, removed: [Removal]) {
        self.retentionDays = retentionDays
        self.removed = removed
        self.bytesFreed = removed.reduce(0) { $0 + $1.bytes }
    }
}
