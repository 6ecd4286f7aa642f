import Domain
import FileSignals
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
///
/// A jump of the backend's own wall clock is corrected at once, before any response measures the skew again: the
/// estimate remembers the backend's wall clock minus its monotonic clock when it measured, and moves by however much
/// that difference has moved since (``corrected(measured:offsetThen:offsetNow:)``). Without it, the first requests
/// after a jump would carry deadlines off by the jump (refused as expired, or executable long after they should be).
final class ClockSkewEstimate: Sendable {
    private struct Measure {
        var milliseconds: Int64
        /// Backend wall clock minus monotonic clock when measured, in milliseconds.
        var offset: Int64
    }

    private let measure: Mutex<Measure>
    private let clock: any BackendClock
    private let reference: ContinuousClock.Instant

    /// - Parameters:
    ///   - initial: The skew last recorded (``ServerRow/clockSkewMilliseconds``), taken as measured now.
    ///   - clock: The backend's clocks.
    init(_ initial: Int64?, clock: any BackendClock = SystemClock()) {
        self.clock = clock
        self.reference = clock.instant()
        let offset = Self.offset(wall: clock.now(), instant: clock.instant(), reference: reference)
        measure = Mutex(Measure(milliseconds: initial ?? 0, offset: offset))
    }

    /// The skew now, corrected for any jump of the backend's wall clock since it was measured.
    var current: Int64 {
        let now = Self.offset(wall: clock.now(), instant: clock.instant(), reference: reference)
        return measure.withLock { Self.corrected(measured: $0.milliseconds, offsetThen: $0.offset, offsetNow: now) }
    }

    /// Records a response's `agentTime` received at backend time `receivedAt`. The measure is the true skew minus the
    /// response's transit time, so deadlines corrected by it fall due early, never late, on the agent.
    func observe(agentTime: Date, receivedAt: Date) {
        let measured = Int64((agentTime.timeIntervalSince(receivedAt) * 1000).rounded())
        let offset = Self.offset(wall: receivedAt, instant: clock.instant(), reference: reference)
        measure.withLock { $0 = Measure(milliseconds: measured, offset: offset) }
    }

    /// A skew measured when the backend's wall-minus-monotonic offset was `offsetThen`, now that it is `offsetNow`:
    /// a backend wall clock that jumped forward by J makes the agent look J behind. Pure.
    static func corrected(measured: Int64, offsetThen: Int64, offsetNow: Int64) -> Int64 {
        measured - (offsetNow - offsetThen)
    }

    static func offset(wall: Date, instant: ContinuousClock.Instant, reference: ContinuousClock.Instant) -> Int64 {
        Int64((wall.timeIntervalSince1970 * 1000).rounded()) - (instant - reference).wholeMilliseconds
    }
}
