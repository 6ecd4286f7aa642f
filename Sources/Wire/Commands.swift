import Domain
import Foundation

/// What the backend asks an agent to do. Encoded as `{"kind":"<name>","<name>":{…}}`.
public enum Command: Sendable, Equatable {
    /// Report inventory: version, clock, GPUs, and every task the agent holds.
    case hello
    /// Start one attempt of a task; idempotent per (task, attempt).
    case startTask(StartTask)
    /// Start several attempts in one round trip; each carries the request ID of its own booking, under which the
    /// agent journals its outcome exactly as for a `startTask` of that ID (issue 10: starts to one server travel in
    /// parallel without more channels to poll).
    case startTasks(StartTasks)
    /// Report the status of every task the agent holds (status reports).
    case listTasks
    /// Stop one attempt: SIGTERM to its process tree, then SIGKILL after the grace period.
    case stopTask(StopTask)
    /// A blocking query on the control channel (liveness, task ends, GPU inventory): the agent answers at once when
    /// its task state differs from ``HeartbeatQuery/since``, and otherwise after ``HeartbeatQuery/waitSeconds``, the
    /// way Consul's blocking queries and Kubernetes' watches work.
    case heartbeat(HeartbeatQuery)
    /// Resynchronise a channel after a queue drain: the agent adopts the new epoch for the channel (refusing any
    /// request of an older one from then on) and answers with its whole inventory.
    case sync(SyncChannel)
    /// One chunk of a file for a task's working directory (transfer channel; see FileChunks.swift).
    case putChunk(PutChunk)
    /// What the agent holds of a file being put (transfer channel).
    case transferStatus(TransferStatusQuery)
    /// Size and SHA-256 of a file in a task's working directory, before a get (transfer channel).
    case statFile(TaskFileReference)
    /// One chunk of a file in a task's working directory (transfer channel).
    case readChunk(ReadChunk)
    /// Bytes of an attempt's stdout or stderr log from an offset (transfer channel).
    case readLog(ReadLog)

    /// The command's name on the wire and in the log.
    public var name: String {
        switch self {
        case .hello: return "hello"
        case .startTask: return "startTask"
        case .startTasks: return "startTasks"
        case .listTasks: return "listTasks"
        case .stopTask: return "stopTask"
        case .heartbeat: return "heartbeat"
        case .sync: return "sync"
        case .putChunk: return "putChunk"
        case .transferStatus: return "transferStatus"
        case .statFile: return "statFile"
        case .readChunk: return "readChunk"
        case .readLog: return "readLog"
        }
    }

    /// File commands: idempotent by construction (a chunk rewrites the same bytes at the same offset; reads read), so
    /// the agent executes them again on redelivery instead of journaling their responses, which hold file data.
    public var isTransfer: Bool {
        switch self {
        case .putChunk, .transferStatus, .statFile, .readChunk, .readLog: return true
        case .hello, .startTask, .startTasks, .listTasks, .stopTask, .heartbeat, .sync: return false
        }
    }
}

extension Command {
    /// Commands that change nothing on the agent (they report): a resend of one may carry a renewed delivery
    /// deadline, since executing it late or twice is harmless. A start, a stop or a sync keeps its original deadline.
    public var isReadOnly: Bool {
        switch self {
        case .hello, .listTasks, .heartbeat, .transferStatus, .statFile, .readChunk, .readLog: return true
        case .startTask, .startTasks, .stopTask, .sync, .putChunk: return false
        }
    }
}

/// The `startTask` command.
public struct StartTask: Codable, Sendable, Equatable {
    public var taskID: TaskID
    public var attempt: Int
    public var spec: TaskSpec
    /// The backend's identity, kept as the task's `touchstone.backend` label.
    public var backend: String
    /// The GPU indices booked for it: the task sees exactly these (`CUDA_VISIBLE_DEVICES`).
    public var gpuIndices: [Int]
    /// The server's capacity as the backend saw it when it booked this start (issue 17 part 1): the agent refuses a
    /// start past its last known `maxTasks` or onto a GPU it holds (``WireError/Code/capacityExceeded``). `nil` from
    /// older backends (then only the GPU check applies).
    public var capacity: CapacityView?

    public init(
        taskID: TaskID, attempt: Int, spec: TaskSpec, backend: String, gpuIndices: [Int] = [],
        capacity: CapacityView? = nil
    ) {
        self.taskID = taskID
        self.attempt = attempt
        self.spec = spec
        self.backend = backend
        self.gpuIndices = gpuIndices
        self.capacity = capacity
    }

    enum CodingKeys: String, CodingKey { case taskID, attempt, spec, backend, gpuIndices, capacity }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        taskID = try container.decode(TaskID.self, forKey: .taskID)
        attempt = try container.decode(Int.self, forKey: .attempt)
        spec = try container.decode(TaskSpec.self, forKey: .spec)
        backend = try container.decode(String.self, forKey: .backend)
        gpuIndices = try container.decodeIfPresent([Int].self, forKey: .gpuIndices) ?? []
        capacity = try container.decodeIfPresent(CapacityView.self, forKey: .capacity)
    }
}

/// A server's capacity as the backend saw it when it decided a start: shape
/// `{"maxTasks":2,"bookedGPUs":[0,1],"serverVersion":17}`.
public struct CapacityView: Codable, Sendable, Equatable {
    /// The server's `max_tasks` in the backend's view.
    public var maxTasks: Int
    /// Every GPU index the backend holds booked on the server, this start's own included.
    public var bookedGPUs: [Int]
    /// The version of the `server/<name>` stream the booking was decided on: the agent keeps the view of the highest
    /// version it has seen as its last known capacity.
    public var serverVersion: Int64

    public init(maxTasks: Int, bookedGPUs: [Int], serverVersion: Int64) {
        self.maxTasks = maxTasks
        self.bookedGPUs = bookedGPUs
        self.serverVersion = serverVersion
    }
}

/// The `startTasks` command: several starts, each under the request ID of its own booking.
public struct StartTasks: Codable, Sendable, Equatable {
    /// One start and the request ID its outcome is journaled under.
    public struct Item: Codable, Sendable, Equatable {
        public var requestID: RequestID
        public var start: StartTask

        public init(requestID: RequestID, start: StartTask) {
            self.requestID = requestID
            self.start = start
        }
    }

    /// The starts, at most ``maximumCount``.
    public var items: [Item]

    /// The most starts one request carries (the request must also fit the queue's message size).
    public static let maximumCount = 16

    public init(items: [Item]) { self.items = items }
}

/// The answer to `startTasks`: one outcome per item, in order.
public struct StartOutcomes: Codable, Sendable, Equatable {
    /// One item's outcome: what a `startTask` of its request ID answered (`taskStarted` or `error`).
    public struct Outcome: Codable, Sendable, Equatable {
        public var requestID: RequestID
        public var body: ResponseBody

        public init(requestID: RequestID, body: ResponseBody) {
            self.requestID = requestID
            self.body = body
        }
    }

    public var outcomes: [Outcome]

    public init(outcomes: [Outcome]) { self.outcomes = outcomes }
}

/// The `sync` command: sent with the channel's new epoch after the backend drained its queues.
public struct SyncChannel: Codable, Sendable, Equatable {
    /// The epoch the channel starts at; equal to the envelope's epoch.
    public var epoch: Int64
    /// Why the backend resynchronised (the desync's reason), for the agent's log.
    public var reason: String

    public init(epoch: Int64, reason: String) {
        self.epoch = epoch
        self.reason = reason
    }
}

/// The answer to `sync`: the epoch now in force on the channel, and the agent's whole inventory.
public struct SyncReply: Codable, Sendable, Equatable {
    public var epoch: Int64
    /// Every task the agent holds, with its status (as in `hello`).
    public var tasks: [TaskStatusReport]

    public init(epoch: Int64, tasks: [TaskStatusReport]) {
        self.epoch = epoch
        self.tasks = tasks
    }
}

/// The `stopTask` command.
public struct StopTask: Codable, Sendable, Equatable {
    public var taskID: TaskID
    public var attempt: Int
    /// Seconds between SIGTERM and SIGKILL.
    public var graceSeconds: Int

    public init(taskID: TaskID, attempt: Int, graceSeconds: Int = 10) {
        self.taskID = taskID
        self.attempt = attempt
        self.graceSeconds = graceSeconds
    }
}

extension Command: Codable {
    enum CodingKeys: String, CodingKey {
        case kind, startTask, startTasks, stopTask, sync, putChunk, transferStatus, statFile, readChunk, readLog, heartbeat
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let kind = try container.decode(String.self, forKey: .kind)
        switch kind {
        case "hello": self = .hello
        case "listTasks": self = .listTasks
        case "heartbeat":
            self = .heartbeat(try container.decodeIfPresent(HeartbeatQuery.self, forKey: .heartbeat) ?? HeartbeatQuery())
        case "startTask": self = .startTask(try container.decode(StartTask.self, forKey: .startTask))
        case "startTasks": self = .startTasks(try container.decode(StartTasks.self, forKey: .startTasks))
        case "stopTask": self = .stopTask(try container.decode(StopTask.self, forKey: .stopTask))
        case "sync": self = .sync(try container.decode(SyncChannel.self, forKey: .sync))
        case "putChunk": self = .putChunk(try container.decode(PutChunk.self, forKey: .putChunk))
        case "transferStatus":
            self = .transferStatus(try container.decode(TransferStatusQuery.self, forKey: .transferStatus))
        case "statFile": self = .statFile(try container.decode(TaskFileReference.self, forKey: .statFile))
        case "readChunk": self = .readChunk(try container.decode(ReadChunk.self, forKey: .readChunk))
        case "readLog": self = .readLog(try container.decode(ReadLog.self, forKey: .readLog))
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .kind, in: container, debugDescription: "unknown command \(kind.debugDescription)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .kind)
        switch self {
        case .hello, .listTasks: break
        case .heartbeat(let body): try container.encode(body, forKey: .heartbeat)
        case .startTask(let body): try container.encode(body, forKey: .startTask)
        case .startTasks(let body): try container.encode(body, forKey: .startTasks)
        case .stopTask(let body): try container.encode(body, forKey: .stopTask)
        case .sync(let body): try container.encode(body, forKey: .sync)
        case .putChunk(let body): try container.encode(body, forKey: .putChunk)
        case .transferStatus(let body): try container.encode(body, forKey: .transferStatus)
        case .statFile(let body): try container.encode(body, forKey: .statFile)
        case .readChunk(let body): try container.encode(body, forKey: .readChunk)
        case .readLog(let body): try container.encode(body, forKey: .readLog)
        }
    }
}

/// What an agent answers. Encoded as `{"kind":"<name>","<name>":{…}}`.
public enum ResponseBody: Sendable, Equatable {
    case hello(HelloReply)
    /// The attempt's status after `startTask` (running, or already ended if it was adopted).
    case taskStarted(TaskStatusReport)
    /// Answers `startTasks`.
    case startOutcomes(StartOutcomes)
    case taskList([TaskStatusReport])
    case taskStopped(TaskStatusReport)
    case heartbeat(HeartbeatReply)
    case synced(SyncReply)
    /// Answers `putChunk` and `transferStatus`.
    case transferProgress(TransferProgress)
    /// Answers `statFile`.
    case fileInfo(FileInfo)
    /// Answers `readChunk`.
    case fileChunk(FileChunk)
    /// Answers `readLog`.
    case logData(LogData)
    case error(WireError)

    /// The status word logged for the response: `ok` or the error code.
    public var status: String {
        if case .error(let error) = self { return error.code.rawValue }
        return "ok"
    }
}

extension ResponseBody: Codable {
    enum CodingKeys: String, CodingKey {
        case kind, hello, taskStarted, startOutcomes, taskList, taskStopped, heartbeat, synced, error, transferProgress, fileInfo
        case fileChunk, logData
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let kind = try container.decode(String.self, forKey: .kind)
        switch kind {
        case "hello": self = .hello(try container.decode(HelloReply.self, forKey: .hello))
        case "taskStarted": self = .taskStarted(try container.decode(TaskStatusReport.self, forKey: .taskStarted))
        case "startOutcomes": self = .startOutcomes(try container.decode(StartOutcomes.self, forKey: .startOutcomes))
        case "taskList": self = .taskList(try container.decode([TaskStatusReport].self, forKey: .taskList))
        case "taskStopped": self = .taskStopped(try container.decode(TaskStatusReport.self, forKey: .taskStopped))
        case "heartbeat": self = .heartbeat(try container.decode(HeartbeatReply.self, forKey: .heartbeat))
        case "synced": self = .synced(try container.decode(SyncReply.self, forKey: .synced))
        case "error": self = .error(try container.decode(WireError.self, forKey: .error))
        case "transferProgress":
            self = .transferProgress(try container.decode(TransferProgress.self, forKey: .transferProgress))
        case "fileInfo": self = .fileInfo(try container.decode(FileInfo.self, forKey: .fileInfo))
        case "fileChunk": self = .fileChunk(try container.decode(FileChunk.self, forKey: .fileChunk))
        case "logData": self = .logData(try container.decode(LogData.self, forKey: .logData))
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .kind, in: container, debugDescription: "unknown response \(kind.debugDescription)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .hello(let body):
            try container.encode("hello", forKey: .kind)
            try container.encode(body, forKey: .hello)
        case .taskStarted(let body):
            try container.encode("taskStarted", forKey: .kind)
            try container.encode(body, forKey: .taskStarted)
        case .startOutcomes(let body):
            try container.encode("startOutcomes", forKey: .kind)
            try container.encode(body, forKey: .startOutcomes)
        case .taskList(let body):
            try container.encode("taskList", forKey: .kind)
            try container.encode(body, forKey: .taskList)
        case .taskStopped(let body):
            try container.encode("taskStopped", forKey: .kind)
            try container.encode(body, forKey: .taskStopped)
        case .heartbeat(let body):
            try container.encode("heartbeat", forKey: .kind)
            try container.encode(body, forKey: .heartbeat)
        case .synced(let body):
            try container.encode("synced", forKey: .kind)
            try container.encode(body, forKey: .synced)
        case .error(let body):
            try container.encode("error", forKey: .kind)
            try container.encode(body, forKey: .error)
        case .transferProgress(let body):
            try container.encode("transferProgress", forKey: .kind)
            try container.encode(body, forKey: .transferProgress)
        case .fileInfo(let body):
            try container.encode("fileInfo", forKey: .kind)
            try container.encode(body, forKey: .fileInfo)
        case .fileChunk(let body):
            try container.encode("fileChunk", forKey: .kind)
            try container.encode(body, forKey: .fileChunk)
        case .logData(let body):
            try container.encode("logData", forKey: .kind)
            try container.encode(body, forKey: .logData)
        }
    }
}

/// The agent's inventory, answering `hello`.
public struct HelloReply: Codable, Sendable, Equatable {
    public var agentVersion: String
    /// GPUs found.
    public var gpuCount: Int
    /// Every task the agent holds, with its status.
    public var tasks: [TaskStatusReport]
    /// The GPUs, from nvidia-smi.
    public var gpus: [GPUDevice]
    /// Why the GPU list may be incomplete, `nil` when nvidia-smi was read cleanly or is absent by design.
    public var gpuProblem: String?

    public init(agentVersion: String, gpuCount: Int, tasks: [TaskStatusReport], gpus: [GPUDevice] = [], gpuProblem: String? = nil) {
        self.agentVersion = agentVersion
        self.gpuCount = gpuCount
        self.tasks = tasks
        self.gpus = gpus
        self.gpuProblem = gpuProblem
    }
}

/// The answer to `heartbeat`: every task's status and the GPU inventory.
public struct HeartbeatReply: Codable, Sendable, Equatable {
    /// Every attempt that runs, plus every report that changed after the query's `since` (all of them when `since`
    /// was `nil` or named another agent instance). The running part is complete: reconciliation reads an attempt
    /// missing from it as no longer running.
    public var tasks: [TaskStatusReport]
    public var gpus: [GPUDevice]
    public var gpuProblem: String?
    /// The agent's task-state version this reply reflects: the next query's ``HeartbeatQuery/since``. `nil` from an
    /// agent that predates blocking queries.
    public var stateVersion: String?

    public init(tasks: [TaskStatusReport], gpus: [GPUDevice], gpuProblem: String?, stateVersion: String? = nil) {
        self.tasks = tasks
        self.gpus = gpus
        self.gpuProblem = gpuProblem
        self.stateVersion = stateVersion
    }
}

/// The arguments of a blocking heartbeat query.
///
/// `since` is the opaque ``HeartbeatReply/stateVersion`` of the previous reply (`<agent instance>/<counter>`): the
/// agent answers at once when its state moved past it (a task started, ended or was stopped, or the agent restarted
/// and so has another instance), and otherwise after `waitSeconds`. `waitSeconds` 0 (the default, and what an older
/// backend sends) answers at once.
public struct HeartbeatQuery: Codable, Sendable, Equatable {
    public var since: String?
    /// How long the agent may hold the query when nothing changed, in seconds (0–300).
    public var waitSeconds: Int

    public init(since: String? = nil, waitSeconds: Int = 0) {
        self.since = since
        self.waitSeconds = waitSeconds
    }
}

/// A task status report: what the agent observes of one attempt.
public struct TaskStatusReport: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable, Equatable {
        /// The process runs.
        case running
        /// The process ended by itself (see `exitCode`, `signal`).
        case exited
        /// The process was stopped by a `stopTask`.
        case stopped
        /// The process could not be started (see `reason`).
        case failedToStart
    }

    public var taskID: TaskID
    public var attempt: Int
    public var state: State
    public var pid: Int32?
    public var startedAt: Date?
    public var endedAt: Date?
    public var exitCode: Int32?
    public var signal: Int32?
    public var reason: String?
    /// Small output files (path → UTF-8 text), collected when the process ended.
    public var outputs: [String: String]
    /// The labels the agent keeps for the attempt: `touchstone.backend`, `.task`, `.attempt`, `.request`.
    public var labels: [String: String]
    /// Bytes in the attempt's `stdout.log` and `stderr.log` (keys `stdout`, `stderr`) once it ended: the backend
    /// skips fetching logs that are empty or already mirrored whole. `nil` from older agents and while it runs.
    public var logBytes: [String: Int64]? = nil

    public init(
        taskID: TaskID, attempt: Int, state: State, pid: Int32? = nil, startedAt: Date? = nil, endedAt: Date? = nil,
        exitCode: Int32? = nil, signal: Int32? = nil, reason: String? = nil, outputs: [String: String] = [:],
        labels: [String: String] = [:]
    ) {
        self.taskID = taskID
        self.attempt = attempt
        self.state = state
        self.pid = pid
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.exitCode = exitCode
        self.signal = signal
        self.reason = reason
        self.outputs = outputs
        self.labels = labels
    }

    /// The attempt this report is about.
    public var key: TaskAttempt { TaskAttempt(taskID: taskID, attempt: attempt) }
}

/// Queue names of one server's channels: `<prefix>-<server>-<n>-req.fifo` and `-resp.fifo`.
public enum ChannelQueues {
    public static func requestQueue(prefix: String, channel: ChannelID) -> String {
        "\(prefix)-\(channel.server.queueNameComponent)-\(channel.index)-req.fifo"
    }
    public static func responseQueue(prefix: String, channel: ChannelID) -> String {
        "\(prefix)-\(channel.server.queueNameComponent)-\(channel.index)-resp.fifo"
    }
}
