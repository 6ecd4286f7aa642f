import Domain
import Foundation
import Synchronization
import Wire

extension Decide {
    /// What the backend does with an answer, given which agent instance answered it.
    public enum ResponderVerdict: Sendable, Equatable {
        /// The instance the backend addresses answered: take the answer.
        case accept
        /// Take the answer, and address the server's requests to `instance` from now on. `reason` as in
        /// ``AgentInstanceChanged/reason``.
        case adopt(instance: String, reason: String)
        /// A second agent answered: refuse the answer (it is never read as the command's outcome) and record the
        /// conflict; the backend goes on waiting for its known agent's answer. `reason` is one line.
        case fence(reason: String)
    }

    /// Who may answer for a server (issue 16: one agent per server).
    ///
    /// - Parameters:
    ///   - known: The instance the backend addresses (``ServerRow/agentInstance``), `nil` if none yet.
    ///   - addressed: The instance the answered request was addressed to (``RequestEnvelope/instance``); `nil`
    ///     means any agent of the server (no instance known, or the known one stopped answering).
    ///   - responder: The instance that answered (``ResponseEnvelope/instance``); `nil` from agents older than
    ///     instance IDs, which are taken as the known agent.
    ///   - fencedNotice: The answer is an agent's own notice that it is fenced (``WireError/Code/fenced``).
    /// - Returns: The verdict. An agent answers only requests addressed to itself, to an earlier life of itself in
    ///   its workspace, or to nobody; so an answer by another instance to a request addressed to the known one is a
    ///   restart of that agent, and to nobody a replacement. Pure.
    public static func responder(
        known: String?, addressed: String?, responder: String?, fencedNotice: Bool
    ) -> ResponderVerdict {
        if fencedNotice {
            return .fence(
                reason: "agent instance \(responder ?? "?") reported itself fenced: it received a request addressed "
                    + "to \(addressed ?? known ?? "another instance"), so two agents serve this server")
        }
        guard let responder, responder != known else { return .accept }
        guard let known else { return .adopt(instance: responder, reason: "first") }
        switch addressed {
        case known?: return .adopt(instance: responder, reason: "restarted")
        case nil: return .adopt(instance: responder, reason: "replaced")
        case let other?:
            return .fence(
                reason: "agent instance \(responder) answered a request addressed to \(other), but the server's agent "
                    + "is \(known)")
        }
    }

    /// Which instance a server's requests are addressed to: the known one while it answers; any (`nil`) once it
    /// stopped answering (unreachable), so that a replacement agent can be adopted. Pure.
    public static func address(known: String?, reachable: Bool) -> String? {
        reachable ? known : nil
    }
}

/// The agent instance one server's channels address, shared by its ``ChannelClient``s: an adoption on one channel
/// readdresses the others at once.
final class AgentAddress: Sendable {
    private struct State {
        var known: String?
        var reachable: Bool
    }

    private let state: Mutex<State>

    /// - Parameters:
    ///   - known: The instance from the server's row (``ServerRow/agentInstance``).
    ///   - reachable: The row's liveness verdict.
    init(known: String?, reachable: Bool) {
        state = Mutex(State(known: known, reachable: reachable))
    }

    /// The instance the backend knows.
    var known: String? { state.withLock { $0.known } }

    /// The instance to address a request to (``Decide/address(known:reachable:)``).
    var current: String? { state.withLock { Decide.address(known: $0.known, reachable: $0.reachable) } }

    /// An instance was adopted.
    func adopt(_ instance: String) { state.withLock { $0.known = instance } }

    /// The server's liveness changed.
    func setReachable(_ reachable: Bool) { state.withLock { $0.reachable = reachable } }
}
