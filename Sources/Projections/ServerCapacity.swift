import Domain
import Foundation

/// Where a server is in its lifecycle.
public enum ServerLifecycle: String, Codable, Sendable, Equatable {
    /// Takes tasks up to `maxTasks`.
    case attached
    /// `maxTasks` is 0 and tasks still run on it.
    case draining
    /// `maxTasks` is 0 and nothing of ours runs: free for engineers.
    case detached
    /// Missed its heartbeats; nothing is dispatched to it.
    case unreachable
}

/// One server's capacity: its limit, what is booked on it, and what it last reported.
public struct ServerRow: Codable, Sendable, Equatable {
    public var serverID: ServerID
    public var state: ServerLifecycle
    /// Most tasks at once; 0 drains the server.
    public var maxTasks: Int
    /// Queue pairs; channel 0 is control.
    public var channels: Int
    /// Attempts dispatched here and not yet finished (in-flight starts and running tasks).
    public var booked: [TaskAttempt]
    /// Attempts the agent confirmed running.
    public var running: [TaskAttempt]
    public var attachedAt: Date
    /// The last response from its agent (backend clock).
    public var lastContact: Date?
    public var agentVersion: String?
    /// Agent clock minus backend clock at the last hello, in milliseconds.
    public var clockSkewMilliseconds: Int64?
    /// GPUs the agent reported at its last hello.
    public var gpuCount: Int?
    /// The drain in progress (or finished, until the next attach or capacity change).
    public var drain: DrainInfo?
    /// An operator asked to detach it; `force` drains with a zero deadline first.
    public var detachRequested: DetachRequest?
    /// The version of the `server/<name>` stream this row reflects: appends that must not race a drain, detach or
    /// capacity change expect it (optimistic concurrency).
    public var streamVersion: Int64 = 0
    /// Set by `server.detached`; cleared by the next attach.
    public var detached: Bool = false
    /// When it was detached (backend clock); `nil` while attached, and in rows stored before this field existed.
    public var detachedAt: Date?
    /// The backend's liveness verdict: false after missed heartbeats.
    public var reachable: Bool = true
    /// When it became unreachable (backend clock), `nil` while reachable.
    public var unreachableSince: Date?
    /// The GPUs the agent last reported.
    public var gpus: [GPUDevice] = []
    /// Why the GPU list may be incomplete (nvidia-smi missing or unreadable), as the agent reported it.
    public var gpuProblem: String?
    /// GPU index → the attempt it is booked for.
    public var gpuBookings: [GPUBooking] = []
    /// The labels of its last attach (`--label gpu=a100`), matched by tasks' constraints; `nil` when none (and in rows
    /// stored before labels existed).
    public var labels: [String: String]?
    /// The agent instance the backend addresses requests to (``AgentInstanceChanged``); `nil` until one answered.
    public var agentInstance: String?
    /// The last second agent refused for this server (``AgentInstanceFenced``), shown by `server show`.
    public var fencedInstance: String?
    /// Why the backend takes it as unhealthy (`clock skew 6m`): no new tasks go there, running ones are left alone.
    /// `nil` when healthy (and in rows stored before health existed).
    public var unhealthy: String?

    /// Task slots still free: `max(0, maxTasks - booked.count)`.
    public var freeSlots: Int { max(0, maxTasks - booked.count) }

    /// GPUs neither booked by us nor busy with processes that are not ours, by index.
    public var freeGPUs: [Int] {
        let booked = Set(gpuBookings.map(\.index))
        return gpus.filter { !booked.contains($0.index) && $0.foreignProcesses == 0 }.map(\.index).sorted()
    }

    /// GPUs busy with processes that are not ours (an engineer's work).
    public var foreignBusyGPUs: [Int] { gpus.filter { $0.foreignProcesses > 0 }.map(\.index).sorted() }
}

/// A drain's facts, for `server show`.
public struct DrainInfo: Codable, Sendable, Equatable {
    public var reason: String?
    /// The actor who drained it, e.g. `operator:alice`.
    public var requestedBy: String
    public var requestedAt: Date
    /// When remaining tasks are stopped and requeued; `nil` waits for them to end.
    public var deadline: Date?
    /// Tasks booked when the drain began.
    public var tasksAtStart: Int
}

/// A pending detach.
public struct DetachRequest: Codable, Sendable, Equatable {
    public var force: Bool
    public var requestedBy: String
    public var requestedAt: Date
}

/// One GPU booked for one attempt.
public struct GPUBooking: Codable, Sendable, Equatable {
    public var index: Int
    public var attempt: TaskAttempt
}

/// Per-server capacity, derived from attach events, dispatches and task ends.
public struct ServerCapacity: Projection {
    public static let name = "server_capacity"
    public var rows: [String: ServerRow] = [:]
    public init() {}

    /// The row of one server.
    public subscript(server: ServerID) -> ServerRow? { rows[server.rawValue] }

    public static func keys(touchedBy event: DomainEvent) -> [String] {
        switch event {
        case .serverAttached(let e): return [e.serverID.rawValue]
        case .serverHelloReceived(let e): return [e.serverID.rawValue]
        case .taskDispatched(let e): return [e.serverID.rawValue]
        case .taskStarted(let e): return [e.serverID.rawValue]
        case .taskFinished(let e): return e.serverID.map { [$0.rawValue] } ?? []
        case .responseReceived(let e): return [e.channel.server.rawValue]
        case .serverCapacitySet(let e): return [e.serverID.rawValue]
        case .serverDrainRequested(let e): return [e.serverID.rawValue]
        case .serverDetachRequested(let e): return [e.serverID.rawValue]
        case .serverDetached(let e): return [e.serverID.rawValue]
        case .serverLivenessChanged(let e): return [e.serverID.rawValue]
        case .serverGPUsObserved(let e): return [e.serverID.rawValue]
        case .taskDispatchWithdrawn(let e): return [e.serverID.rawValue]
        // On the server's stream: its row's stream version must follow, or every booking conditioned on it fails.
        case .unrecognisedTaskFound(let e): return [e.serverID.rawValue]
        case .agentInstance(let e): return [e.serverID.rawValue]
        case .serverCapacityViolationRefused(let e): return [e.serverID.rawValue]
        case .serverHealthChanged(let e): return [e.serverID.rawValue]
        case .taskSubmitted, .requestSent, .responseRejected, .taskRequeued, .transportFailed, .channelDesyncDetected, .channelQueuesDrained,
            .taskCancelRequested, .taskStartSending, .transfer, .backend, .garbageCollected, .keys: return []
        }
    }

    public mutating func apply(_ recorded: RecordedEvent<DomainEvent>) {
        applyEvent(recorded)
        if recorded.stream.hasPrefix("server/"), let server = ServerID(rawValue: String(recorded.stream.dropFirst(7))) {
            rows[server.rawValue]?.streamVersion = recorded.version
        }
    }

    private mutating func applyEvent(_ recorded: RecordedEvent<DomainEvent>) {
        switch recorded.event {
        case .serverAttached(let e):
            var row =
                rows[e.serverID.rawValue]
                ?? ServerRow(
                    serverID: e.serverID, state: .attached, maxTasks: e.maxTasks, channels: e.channels, booked: [],
                    running: [], attachedAt: recorded.recordedAt)
            row.maxTasks = e.maxTasks
            row.channels = e.channels
            // An attach states the whole configuration: labels not given again are dropped.
            row.labels = e.labels
            row.detached = false
            row.detachedAt = nil
            row.detachRequested = nil
            row.drain = nil
            update(row)
        case .serverCapacitySet(let e):
            guard var row = rows[e.serverID.rawValue] else { return }
            row.maxTasks = e.maxTasks
            if e.maxTasks > 0 {
                row.drain = nil
                row.detached = false
                row.detachedAt = nil
                row.detachRequested = nil
            }
            update(row)
        case .serverDrainRequested(let e):
            guard var row = rows[e.serverID.rawValue] else { return }
            row.maxTasks = 0
            row.drain = DrainInfo(
                reason: e.reason, requestedBy: recorded.actor, requestedAt: recorded.recordedAt, deadline: e.deadline,
                tasksAtStart: row.booked.count)
            update(row)
        case .serverDetachRequested(let e):
            guard var row = rows[e.serverID.rawValue] else { return }
            row.detachRequested = DetachRequest(
                force: e.force, requestedBy: recorded.actor, requestedAt: recorded.recordedAt)
            update(row)
        case .serverDetached(let e):
            guard var row = rows[e.serverID.rawValue] else { return }
            row.detached = true
            row.detachedAt = recorded.recordedAt
            row.maxTasks = 0
            row.detachRequested = nil
            update(row)
        case .serverLivenessChanged(let e):
            guard var row = rows[e.serverID.rawValue] else { return }
            row.reachable = e.reachable
            row.unreachableSince = e.reachable ? nil : recorded.recordedAt
            update(row)
        case .serverHelloReceived(let e):
            guard var row = rows[e.serverID.rawValue] else { return }
            row.agentVersion = e.agentVersion
            row.clockSkewMilliseconds = e.clockSkewMilliseconds
            row.gpuCount = e.gpuCount
            if let gpus = e.gpus { row.gpus = gpus }
            row.lastContact = recorded.recordedAt
            update(row)
        case .serverGPUsObserved(let e):
            guard var row = rows[e.serverID.rawValue] else { return }
            row.gpus = e.gpus
            row.gpuCount = e.gpus.count
            row.gpuProblem = e.problem
            update(row)
        case .taskDispatched(let e):
            guard var row = rows[e.serverID.rawValue] else { return }
            let attempt = TaskAttempt(taskID: e.taskID, attempt: e.attempt)
            if !row.booked.contains(attempt) { row.booked.append(attempt) }
            for index in e.gpuIndices ?? [] where !row.gpuBookings.contains(where: { $0.index == index }) {
                row.gpuBookings.append(GPUBooking(index: index, attempt: attempt))
            }
            update(row)
        case .taskStarted(let e):
            guard var row = rows[e.serverID.rawValue] else { return }
            let attempt = TaskAttempt(taskID: e.taskID, attempt: e.attempt)
            if !row.running.contains(attempt) { row.running.append(attempt) }
            update(row)
        case .taskFinished(let e):
            guard let server = e.serverID else { return }
            release(TaskAttempt(taskID: e.taskID, attempt: e.attempt), on: server)
        case .taskDispatchWithdrawn(let e):
            release(TaskAttempt(taskID: e.taskID, attempt: e.attempt), on: e.serverID)
        case .serverHealthChanged(let e):
            guard var row = rows[e.serverID.rawValue] else { return }
            row.unhealthy = e.unhealthy
            update(row)
        case .responseReceived(let e):
            rows[e.channel.server.rawValue]?.lastContact = recorded.recordedAt
            // Skew from the agent's wall clock in each response (an upper bound: it includes the queue's latency).
            rows[e.channel.server.rawValue]?.clockSkewMilliseconds =
                Int64((e.agentTime.timeIntervalSince(recorded.recordedAt) * 1000).rounded())
        case .agentInstance(.changed(let e)):
            rows[e.serverID.rawValue]?.agentInstance = e.instance
        case .agentInstance(.fenced(let e)):
            rows[e.serverID.rawValue]?.fencedInstance = e.fenced
        case .taskSubmitted, .requestSent, .responseRejected, .taskRequeued, .transportFailed, .channelDesyncDetected, .channelQueuesDrained,
            .unrecognisedTaskFound, .serverCapacityViolationRefused, .taskCancelRequested, .taskStartSending, .transfer, .backend, .garbageCollected, .keys:
            break
        }
    }

    private mutating func release(_ attempt: TaskAttempt, on server: ServerID) {
        guard var row = rows[server.rawValue] else { return }
        row.booked.removeAll { $0 == attempt }
        row.running.removeAll { $0 == attempt }
        row.gpuBookings.removeAll { $0.attempt == attempt }
        update(row)
    }

    private mutating func update(_ row: ServerRow) {
        var row = row
        row.state = Self.lifecycle(row)
        rows[row.serverID.rawValue] = row
    }

    /// detached (explicitly) > unreachable > attached (max > 0) > draining (tasks left) > detached (drained).
    static func lifecycle(_ row: ServerRow) -> ServerLifecycle {
        if row.detached { return .detached }
        if !row.reachable { return .unreachable }
        if row.maxTasks > 0 { return .attached }
        return row.booked.isEmpty ? .detached : .draining
    }
}
