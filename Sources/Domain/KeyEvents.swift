import Foundation

/// Facts about the signing keys (docs/security.md): which agent key the backend trusts for each server, and each
/// rotation of the backend's own key. Public keys only, as standard base64 of their 32 bytes; private keys never
/// enter the log.
public enum KeyEvent: Sendable, Equatable {
    case agentKeyPinned(AgentKeyPinned)  // "server.agent-key-pinned" v1
    case backendKeyRotated(BackendKeyRotated)  // "keys.backend-rotated" v1

    /// The stream: `keys/agent/<name>` for an agent key, `keys/backend` for the backend's. Never `server/<name>`:
    /// the deciders append to a server's stream at the version its read model row holds, which these events do not
    /// move.
    public var stream: String {
        switch self {
        case .agentKeyPinned(let e): return Self.agentStream(e.serverID)
        case .backendKeyRotated: return "keys/backend"
        }
    }

    /// The stream of a server's agent key pins.
    public static func agentStream(_ server: ServerID) -> String { "keys/agent/\(server)" }
}

/// The backend pinned the public key whose signatures it accepts on a server's responses. A later pin replaces it;
/// the replaced key stays valid until ``previousValidUntil`` (a rekey's overlap), then no longer.
public struct AgentKeyPinned: EventPayload {
    public static let eventType = "server.agent-key-pinned"
    public static let schemaVersion = 1
    public var serverID: ServerID
    /// The agent's Ed25519 public key (base64 of 32 bytes).
    public var publicKey: String
    /// The agent's X25519 key for sealed secrets (base64 of 32 bytes), when it published one.
    public var sealingKey: String?
    /// How it was learnt: `operator` (`server attach --agent-key`, `server rekey`) or `co-located` (the agent
    /// published it in the backend's state directory, on the same host).
    public var source: String
    /// Until when the key this pin replaces stays valid; `nil`: it stops at once (or there was none).
    public var previousValidUntil: Date?

    public init(
        serverID: ServerID, publicKey: String, sealingKey: String? = nil, source: String, previousValidUntil: Date? = nil
    ) {
        self.serverID = serverID
        self.publicKey = publicKey
        self.sealingKey = sealingKey
        self.source = source
        self.previousValidUntil = previousValidUntil
    }
}

/// The backend's signing key was created or rotated. Requests are signed with the newest key from ``activeFrom``
/// on; agents accept the old key and the new one while the overlap lasts (they are given both).
public struct BackendKeyRotated: EventPayload {
    public static let eventType = "keys.backend-rotated"
    public static let schemaVersion = 1
    /// The new public key (base64 of 32 bytes).
    public var publicKey: String
    /// The key it replaces; `nil` for the first key (`keys init`).
    public var previousKey: String?
    /// When the backend starts signing with the new key: the rotation's time plus its overlap.
    public var activeFrom: Date

    public init(publicKey: String, previousKey: String?, activeFrom: Date) {
        self.publicKey = publicKey
        self.previousKey = previousKey
        self.activeFrom = activeFrom
    }
}
