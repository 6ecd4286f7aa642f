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

    /// Task slots still free: `max(0, maxTasks - booked.count)`.
    public var freeSlots: Int { max(0, maxTasks - booked.count) }
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
        case .taskSubmitted, .requestSent, .responseRejected: return []
        }
    }

    public mutating func apply(_ recorded: RecordedEvent<DomainEvent>) {
        switch recorded.event {
        case .serverAttached(let e):
            var row =
                rows[e.serverID.rawValue]
                ?? ServerRow(
                    serverID: e.serverID, state: .attached, maxTasks: e.maxTasks, channels: e.channels, booked: [],
                    running: [], attachedAt: recorded.recordedAt)
            row.maxTasks = e.maxTasks
            row.channels = e.channels
            row.state = Self.lifecycle(maxTasks: e.maxTasks, booked: row.booked.count)
            rows[e.serverID.rawValue] = row
        case .serverHelloReceived(let e):
            rows[e.serverID.rawValue]?.agentVersion = e.agentVersion
            rows[e.serverID.rawValue]?.clockSkewMilliseconds = e.clockSkewMilliseconds
            rows[e.serverID.rawValue]?.gpuCount = e.gpuCount
            rows[e.serverID.rawValue]?.lastContact = recorded.recordedAt
        case .taskDispatched(let e):
            guard var row = rows[e.serverID.rawValue] else { return }
            let attempt = TaskAttempt(taskID: e.taskID, attempt: e.attempt)
            if !row.booked.contains(attempt) { row.booked.append(attempt) }
            rows[e.serverID.rawValue] = row
        case .taskStarted(let e):
            guard var row = rows[e.serverID.rawValue] else { return }
            let attempt = TaskAttempt(taskID: e.taskID, attempt: e.attempt)
            if !row.running.contains(attempt) { row.running.append(attempt) }
            rows[e.serverID.rawValue] = row
        case .taskFinished(let e):
            guard let server = e.serverID, var row = rows[server.rawValue] else { return }
            let attempt = TaskAttempt(taskID: e.taskID, attempt: e.attempt)
            row.booked.removeAll { $0 == attempt }
            row.running.removeAll { $0 == attempt }
            row.state = Self.lifecycle(maxTasks: row.maxTasks, booked: row.booked.count)
            rows[server.rawValue] = row
        case .responseReceived(let e):
            rows[e.channel.server.rawValue]?.lastContact = recorded.recordedAt
        case .taskSubmitted, .requestSent, .responseRejected:
            break
        }
    }

    static func lifecycle(maxTasks: Int, booked: Int) -> ServerLifecycle {
        if maxTasks > 0 { return .attached }
        return booked > 0 ? .draining : .detached
    }
}
