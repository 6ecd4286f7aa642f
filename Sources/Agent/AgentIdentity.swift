import Domain
import Foundation

/// This agent process's identity (issue 16: one agent per server).
///
/// Each start of `touchstone-agent` is a new instance, with a UUIDv7 ID (later starts sort later) recorded in its
/// journal. Every response carries it (``ResponseEnvelope/instance``), and the backend addresses requests to the
/// instance it knows (``RequestEnvelope/instance``). An instance answers requests addressed to itself, to any earlier
/// instance of its workspace (they are dead: the workspace lock admits one agent at a time), or to nobody. A request
/// addressed to anyone else means that another agent serves this server: this one is fenced.
struct AgentIdentity: Sendable, Equatable {
    /// This process's instance ID.
    let instance: String
    /// The instances recorded earlier in this workspace's journal.
    let earlier: Set<String>

    init(instance: String = RequestID.make().rawValue, earlier: some Sequence<String> = []) {
        self.instance = instance
        self.earlier = Set(earlier)
    }

    /// Whether this instance may answer a request addressed to `addressed`. Pure.
    func accepts(_ addressed: String?) -> Bool {
        guard let addressed else { return true }
        return addressed == instance || earlier.contains(addressed)
    }
}

/// The agent stops because another agent serves its server (``AgentIdentity``): it answered nothing and leaves its
/// queues to the other agent.
struct AgentFenced: Error, CustomStringConvertible {
    var description: String
}
