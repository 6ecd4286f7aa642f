import Domain
import Foundation
import Synchronization

/// Servers that get no new starts for a while because they refused one (issue 17 part 3: a start refused by a server
/// is not retried on that same server in a tight loop). The backoff is ``Decide/refusalBackoff(refusals:)``; a start
/// the server accepts clears it. Kept in memory on the monotonic clock: a restarted backend starts without holds.
final class PlacementHolds: Sendable {
    private struct Hold {
        var refusals: Int
        var until: ContinuousClock.Instant
    }

    private let holds = Mutex<[ServerID: Hold]>([:])

    /// Records a refusal by `server` at `now`: it is held for the next backoff.
    func refused(_ server: ServerID, now: ContinuousClock.Instant) {
        holds.withLock { holds in
            let refusals = (holds[server]?.refusals ?? 0) + 1
            holds[server] = Hold(refusals: refusals, until: now + Decide.refusalBackoff(refusals: refusals))
        }
    }

    /// Records a start `server` accepted: its backoff starts again from nothing.
    func accepted(_ server: ServerID) {
        _ = holds.withLock { $0.removeValue(forKey: server) }
    }

    /// The servers held at `now`.
    func held(at now: ContinuousClock.Instant) -> Set<ServerID> {
        holds.withLock { Set($0.filter { $0.value.until > now }.keys) }
    }

    /// How long until the next hold ends, if one is in force.
    func nextRelease(after now: ContinuousClock.Instant) -> Duration? {
        holds.withLock { holds in holds.values.map(\.until).filter { $0 > now }.min().map { $0 - now } }
    }
}

/// One server's clock skew as last measured (agent clock minus backend clock, milliseconds), shared by its channels:
/// each response updates it, and each request's delivery deadline is sent in the agent's time with it
/// (docs/recovery.md, "Delivery deadlines and clock skew").
final class ClockSkewEstimate: Sendable {
    private let milliseconds: Mutex<Int64>

    init(_ initial: Int64?) { milliseconds = Mutex(initial ?? 0) }

    var current: Int64 { milliseconds.withLock { $0 } }

    /// Records a response's `agentTime` received at backend time `receivedAt`. The measure is the true skew minus the
    /// response's transit time, so deadlines corrected by it fall due early, never late, on the agent.
    func observe(agentTime: Date, receivedAt: Date) {
        let measured = Int64((agentTime.timeIntervalSince(receivedAt) * 1000).rounded())
        milliseconds.withLock { $0 = measured }
    }
}
