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

    /// Which instance a server's requests are addressed to: the known one, until it has been silent (unreachable)
    /// for `lostAfter`; then any (`nil`), so that a replacement agent can be adopted. Not sooner: the known agent may
    /// only be frozen, and a replacement's inventory would declare its running tasks lost and run them a second time
    /// while they still run (the same limit as ``BackendConfiguration/lostAfter`` for declaring them lost). Pure.
    ///
    /// - Parameter silentFor: How long the known instance has been unreachable; `nil` while it answers.
    public static func address(known: String?, silentFor: Duration?, lostAfter: Duration) -> String? {
        guard let silentFor, silentFor >= lostAfter else { return known }
        return nil
    }
}

/// The agent instance one server's channels address, shared by its ``ChannelClient``s: an adoption on one channel
/// readdresses the others at once.
final class AgentAddress: Sendable {
    private struct State {
        var known: String?
        /// When the known instance became unreachable (monotonic), `nil` while it answers.
        var silentSince: ContinuousClock.Instant?
    }

    private let state: Mutex<State>
    let lostAfter: Duration

    /// - Parameters:
    ///   - known: The instance from the server's row (``ServerRow/agentInstance``).
    ///   - reachable: The row's liveness verdict (an unreachable row counts as silent from now).
    ///   - lostAfter: ``BackendConfiguration/lostAfter``.
    init(known: String?, reachable: Bool, lostAfter: Duration = .seconds(300)) {
        state = Mutex(State(known: known, silentSince: reachable ? nil : .now))
        self.lostAfter = lostAfter
    }

    /// The instance the backend knows.
    var known: String? { state.withLock { $0.known } }

    /// The instance to address a request to (``Decide/address(known:silentFor:lostAfter:)``).
    var current: String? {
        state.withLock { state in
            Decide.address(
                known: state.known, silentFor: state.silentSince.map { ContinuousClock.now - $0 }, lostAfter: lostAfter)
        }
    }

    /// Adopts `instance` if the known one is still `expected`: two channels deciding on the same answer at once
    /// adopt (and record) it once. Returns whether this call adopted it.
    func adopt(_ instance: String, replacing expected: String?) -> Bool {
        state.withLock { state in
            guard state.known == expected else { return false }
            state.known = instance
            state.silentSince = nil
            return true
        }
    }

    /// The server's liveness changed.
    func setReachable(_ reachable: Bool) {
        state.withLock { state in
            if reachable {
                state.silentSince = nil
            } else if state.silentSince == nil {
                state.silentSince = .now
            }
        }
    }
}
