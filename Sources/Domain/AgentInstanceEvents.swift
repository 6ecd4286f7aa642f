import Foundation

/// What the backend learned about which agent process serves a server: the agent instance it addresses requests to
/// (``AgentInstanceChanged``), and a second agent it refused (``AgentInstanceFenced``). Both are on the server's
/// stream (`server/<name>`).
public enum AgentInstanceEvent: Sendable, Equatable {
    case changed(AgentInstanceChanged)  // "server.agent-instance-changed" v1
    case fenced(AgentInstanceFenced)  // "server.agent-instance-fenced" v1

    /// The server the event is about.
    public var serverID: ServerID {
        switch self {
        case .changed(let e): return e.serverID
        case .fenced(let e): return e.serverID
        }
    }
}

/// The backend now addresses a server's requests to another agent instance.
public struct AgentInstanceChanged: EventPayload {
    public static let eventType = "server.agent-instance-changed"
    public static let schemaVersion = 1
    public var serverID: ServerID
    /// The agent instance answering from now on (a UUIDv7 string, new at each agent start).
    public var instance: String
    /// The instance addressed before; `nil` for the first one the backend met.
    public var previous: String?
    /// Why: `first` (no instance was known), `restarted` (a later life of the known agent, in its workspace, answered
    /// a request addressed to the earlier one) or `replaced` (the known instance had stopped answering, and another
    /// answered a request addressed to any instance).
    public var reason: String

    public init(serverID: ServerID, instance: String, previous: String?, reason: String) {
        self.serverID = serverID
        self.instance = instance
        self.previous = previous
        self.reason = reason
    }
}

/// A second agent answered for a server whose agent the backend knows: its answer was refused, and the agent itself,
/// told it is fenced, exits. The known agent keeps its tasks.
public struct AgentInstanceFenced: EventPayload {
    public static let eventType = "server.agent-instance-fenced"
    public static let schemaVersion = 1
    public var serverID: ServerID
    /// The instance the backend keeps addressing.
    public var known: String?
    /// The refused instance; `nil` when the refused answer named none.
    public var fenced: String?
    /// The channel the refused message came on.
    public var channel: Int
    /// One line: what the refused instance did (`it answered a request addressed to …`, `it reported itself fenced`).
    public var reason: String

    public init(serverID: ServerID, known: String?, fenced: String?, channel: Int, reason: String) {
        self.serverID = serverID
        self.known = known
        self.fenced = fenced
        self.channel = channel
        self.reason = reason
    }
}

/// The backend process's own lifecycle, on the `backend` stream: when it served, and whether it stopped cleanly.
public enum BackendLifecycleEvent: Sendable, Equatable {
    case started(BackendStarted)  // "backend.started" v1
    case stopped(BackendStopped)  // "backend.stopped" v1
}

/// `touchstone serve` started serving this state directory.
public struct BackendStarted: EventPayload {
    public static let eventType = "backend.started"
    public static let schemaVersion = 1
    /// The process ID.
    public var pid: Int32
    /// `touchstone --version`.
    public var version: String

    public init(pid: Int32, version: String) {
        self.pid = pid
        self.version = version
    }
}

/// `touchstone serve` stopped cleanly (SIGTERM or SIGINT): nothing it sent is left unaccounted for that the next start
/// does not settle. A backend that died leaves no such event.
public struct BackendStopped: EventPayload {
    public static let eventType = "backend.stopped"
    public static let schemaVersion = 1
    public var pid: Int32
    /// Why, one line: `SIGTERM`, `SIGINT`, or an error.
    public var reason: String

    public init(pid: Int32, reason: String) {
        self.pid = pid
        self.reason = reason
    }
}
