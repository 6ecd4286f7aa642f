import Foundation
import Synchronization
import Testing

@testable import Orchestrator

/// Issue 17 part 3: a jump of the backend's own wall clock moves the skew estimate at once, so the next request's
/// delivery deadline is right in the agent's time before any response measures the skew again.
@Suite struct ClockSkewEstimateTests {
    /// A fake backend clock: a wall time the test moves, over the real monotonic clock.
    final class MovableClock: BackendClock {
        let offset = Mutex<TimeInterval>(0)
        func now() -> Date { Date().addingTimeInterval(offset.withLock { $0 }) }
        func instant() -> ContinuousClock.Instant { .now }
    }

    @Test func aBackendJumpIsCorrectedBeforeTheNextMeasure() {
        let clock = MovableClock()
        let estimate = ClockSkewEstimate(nil, clock: clock)
        // The agent is 2 s ahead.
        estimate.observe(agentTime: clock.now().addingTimeInterval(2), receivedAt: clock.now())
        #expect(abs(estimate.current - 2_000) <= 50)
        let year: TimeInterval = 365 * 86_400
        clock.offset.withLock { $0 = year }
        // The backend now reads a year ahead: the agent is a year (less 2 s) behind it.
        #expect(abs(estimate.current - (2_000 - Int64(year * 1000))) <= 50)
        clock.offset.withLock { $0 = -year }
        #expect(abs(estimate.current - (2_000 + Int64(year * 1000))) <= 50)
        clock.offset.withLock { $0 = 0 }
        #expect(abs(estimate.current - 2_000) <= 50)
    }

    @Test func theCorrectionIsTheOffsetsMove() {
        #expect(ClockSkewEstimate.corrected(measured: 500, offsetThen: 1_000, offsetNow: 1_000) == 500)
        #expect(ClockSkewEstimate.corrected(measured: 500, offsetThen: 1_000, offsetNow: 4_000) == -2_500)
        #expect(ClockSkewEstimate.corrected(measured: 0, offsetThen: 4_000, offsetNow: 1_000) == 3_000)
    }
}
