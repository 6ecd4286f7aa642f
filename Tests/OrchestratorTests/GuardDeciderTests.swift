import Domain
import Foundation
@testable import Projections
import Testing
import TestSupport
import Wire

@testable import Orchestrator

/// The pure rules of issue 17 parts 1, 3 and 4: refused starts, the refusal backoff, clock-skew health, the
/// monotonic expired-start rule, the retry accounting of attempts that never ran, and vanished processes.
@Suite struct GuardDeciderTests {
    static let server = Fixtures.gpu1
    static func row(_ status: TaskStatus, attempt: Int = 1, notRun: Int? = nil) -> TaskRow {
        var row = DeciderTests.row(status, attempt: attempt)
        row.attemptsNotRun = notRun
        return row
    }

    // MARK: refused starts

    @Test(arguments: TaskStatus.allCases, ["capacityExceeded", "expired", "executionFailed", "badRequest"])
    func aRefusalWithdrawsOrFailsOnlyAStartInFlight(status: TaskStatus, code: String) throws {
        let command = Decide.TaskCommand.startRefused(attempt: 1, server: Self.server, code: code, message: "m", maxAttempts: 3)
        let row = Self.row(status)
        guard status == .starting || status == .dispatching else {
            #expect(throws: Rejection.self) { try Decide.task(command, given: row) }
            return
        }
        let events = try Decide.task(command, given: row)
        if code == "capacityExceeded" || code == "expired" {
            // Never ran, no fault of the task: queued again, and the withdrawal does not count as a retry.
            #expect(
                events == [
                    .taskDispatchWithdrawn(
                        TaskDispatchWithdrawn(taskID: row.taskID, attempt: 1, serverID: Self.server, reason: "refused by \(Self.server): \(code): m"))
                ])
        } else {
            guard case .taskFinished(let finished) = events.first else {
                Issue.record("no task.finished for \(code)")
                return
            }
            #expect(finished.outcome == .failed)
            #expect(finished.failureClass == .infrastructure)
            #expect(events.count == 2)  // requeued: attempt 1 of 3
        }
    }

    @Test func aRefusalOfAnotherAttemptOrServerIsNotApplicable() {
        let row = Self.row(.starting, attempt: 2)
        #expect(throws: Rejection.self) {
            try Decide.task(.startRefused(attempt: 1, server: Self.server, code: "capacityExceeded", message: "m", maxAttempts: 3), given: row)
        }
        #expect(throws: Rejection.self) {
            try Decide.task(.startRefused(attempt: 2, server: DeciderTests.other, code: "capacityExceeded", message: "m", maxAttempts: 3), given: row)
        }
        #expect(throws: Rejection.self) {
            try Decide.task(.startRefused(attempt: 1, server: Self.server, code: "expired", message: "m", maxAttempts: 3), given: nil)
        }
    }

    @Test func theRefusalBackoffDoublesFromOneSecondToAMinute() {
        #expect(Decide.refusalBackoff(refusals: 0) == .zero)
        #expect((1...9).map { Decide.refusalBackoff(refusals: $0) } == [1, 2, 4, 8, 16, 32, 60, 60, 60].map { .seconds($0) })
        #expect(Decide.refusalBackoff(refusals: 1_000) == .seconds(60))
    }

    @Test func aHeldServerIsReleasedAfterItsBackoffAndAnAcceptedStartClearsIt() {
        let holds = PlacementHolds()
        let now = ContinuousClock.now
        holds.refused(Self.server, now: now)
        #expect(holds.held(at: now) == [Self.server])
        #expect(holds.nextRelease(after: now) == .seconds(1))
        #expect(holds.held(at: now + .seconds(1)).isEmpty)
        holds.refused(Self.server, now: now)
        #expect(holds.nextRelease(after: now) == .seconds(2))
        holds.accepted(Self.server)
        #expect(holds.held(at: now).isEmpty)
        #expect(holds.nextRelease(after: now) == nil)
    }

    // MARK: eligibility and capacity views

    @Test func onlyLinkedHealthyServersNotHeldBackAreEligible() {
        var healthy = DeciderTests.serverRow(booked: 0)
        var skewed = DeciderTests.serverRow(booked: 0)
        skewed.serverID = ServerID(rawValue: "gpu-02")!
        skewed.unhealthy = "clock skew 6m"
        var held = DeciderTests.serverRow(booked: 0)
        held.serverID = ServerID(rawValue: "gpu-03")!
        healthy.streamVersion = 4
        let all = Set([healthy, skewed, held].map(\.serverID))
        #expect(Backend.eligible([healthy, skewed, held], linked: all, held: [held.serverID]) == [healthy.serverID])
        #expect(Backend.eligible([healthy], linked: [], held: []).isEmpty)
    }

    @Test func aStartCarriesMaxTasksEveryBookedGPUAndTheVersionDecidedOn() {
        var row = DeciderTests.serverRow(booked: 1)
        row.gpuBookings = [GPUBooking(index: 3, attempt: row.booked[0])]
        row.streamVersion = 9
        #expect(Backend.capacityView(row, adding: [1]) == CapacityView(maxTasks: 2, bookedGPUs: [1, 3], serverVersion: 9))
        #expect(Backend.capacityView(row, adding: [], version: 7) == CapacityView(maxTasks: 2, bookedGPUs: [3], serverVersion: 7))
    }

    // MARK: clock skew

    @Test(arguments: [
        (nil, nil), (0, nil), (30_000, nil), (-30_000, nil), (30_001, "clock skew 30s"), (-45_000, "clock skew -45s"),
        (360_000, "clock skew 6m"), (359_900, "clock skew 6m"), (-7_200_000, "clock skew -2h"),
        (365 * 86_400_000, "clock skew 365d"), (89_000, "clock skew 1m"), (90_000, "clock skew 2m"),
    ] as [(Int64?, String?)])
    func aSkewPastTheToleranceIsUnhealthy(skew: Int64?, expected: String?) {
        #expect(Decide.health(skewMilliseconds: skew, tolerance: .seconds(30)) == expected)
    }

    @Test(arguments: [nil, "clock skew 6m"] as [String?], [0, 360_000, 420_000] as [Int64])
    func healthIsRecordedOnlyWhenTheVerdictFlips(was: String?, skew: Int64) throws {
        var row = DeciderTests.serverRow(booked: 0)
        row.unhealthy = was
        let events = try Decide.server(.health(skewMilliseconds: skew, tolerance: .seconds(30)), given: row)
        let now = Decide.health(skewMilliseconds: skew, tolerance: .seconds(30))
        if (was == nil) == (now == nil) {
            #expect(events.isEmpty)
        } else {
            #expect(events == [.serverHealthChanged(ServerHealthChanged(serverID: Self.server, unhealthy: now))])
        }
    }

    @Test func aDeliveryDeadlineTravelsInTheAgentsTimeAndItsWaitIsBounded() {
        let deadline = Date(timeIntervalSince1970: 1_000)
        #expect(ChannelClient.agentTime(deadline, skewMilliseconds: 360_000) == Date(timeIntervalSince1970: 1_360))
        #expect(ChannelClient.agentTime(deadline, skewMilliseconds: -500) == Date(timeIntervalSince1970: 999.5))
        // A wall clock that jumped a year either way neither stretches nor skips the wait past its bounds.
        let year: TimeInterval = 365 * 86_400
        #expect(ChannelClient.remaining(until: deadline, now: deadline.addingTimeInterval(-year), atMost: .seconds(60)) == .seconds(60))
        #expect(ChannelClient.remaining(until: deadline, now: deadline.addingTimeInterval(year), atMost: .seconds(60)) == .zero)
        #expect(ChannelClient.remaining(until: deadline, now: deadline.addingTimeInterval(-20), atMost: .seconds(60)) == .seconds(20))
    }

    @Test(arguments: [0, 60, 75, 76, 3_600])
    func aStartExpiresOnlyPastDeliveryPlusExecutionPlusFiveSecondsOnTheMonotonicClock(seconds: Int) {
        #expect(
            Decide.startExpired(sentFor: .seconds(seconds), requestTimeout: .seconds(60), executionSeconds: 10)
                == (seconds > 75))
    }

    @Test func lostAfterCountsFromWhenThisProcessSawTheServerUnreachable() {
        let clock = UnreachableClock()
        var row = DeciderTests.serverRow(booked: 1, reachable: false)
        row.unreachableSince = Date(timeIntervalSince1970: 0)  // a year-old wall-clock stamp changes nothing
        let start = ContinuousClock.now
        #expect(clock.elapsed([row], now: start) == [Self.server: .zero])
        #expect(clock.elapsed([row], now: start + .seconds(30)) == [Self.server: .seconds(30)])
        row.reachable = true
        #expect(clock.elapsed([row], now: start + .seconds(40)).isEmpty)
        row.reachable = false
        #expect(clock.elapsed([row], now: start + .seconds(50)) == [Self.server: .zero])
    }

    // MARK: retries and vanished processes

    @Test(arguments: [0, 1, 2])
    func attemptsThatNeverRanDoNotCountAgainstTheRetryPolicy(notRun: Int) {
        // Attempt 3 of max 3, after `notRun` withdrawals: retried unless 3 attempts really ran.
        let row = Self.row(.running, attempt: 3, notRun: notRun == 0 ? nil : notRun)
        let events = Reconciler.lost(row, reason: "r", maxAttempts: 3)
        #expect(events.count == (notRun > 0 ? 2 : 1))
    }

    @Test(arguments: [
        (TaskStatusReport.State.exited, nil, nil, true), (.exited, 0, nil, false), (.exited, 137, nil, false),
        (.exited, nil, 9, false), (.stopped, nil, nil, false), (.failedToStart, nil, nil, false), (.running, nil, nil, false),
    ] as [(TaskStatusReport.State, Int32?, Int32?, Bool)])
    func aProcessThatEndedWithoutAnExitCodeOrSignalVanished(state: TaskStatusReport.State, code: Int32?, signal: Int32?, vanished: Bool) {
        let report = TaskStatusReport(taskID: Fixtures.taskA, attempt: 1, state: state, exitCode: code, signal: signal)
        #expect(Reconciler.vanished(report) == vanished)
    }

    @Test(arguments: [1, 3])
    func aVanishedProcessIsLostAsAnInfrastructureFailureAndRetried(attempt: Int) {
        let row = Self.row(.running, attempt: attempt)
        let report = TaskStatusReport(
            taskID: row.taskID, attempt: attempt, state: .exited, reason: "no exit code was recorded")
        let events = Reconciler.transitions(for: row, report: report, context: .init(server: Self.server, maxAttempts: 3))
        guard case .taskFinished(let finished) = events.first else {
            Issue.record("no task.finished")
            return
        }
        #expect(finished.outcome == .lost)
        #expect(finished.failureClass == .infrastructure)
        #expect(events.count == (attempt < 3 ? 2 : 1))
        if attempt < 3, case .taskRequeued = events.last {} else if attempt < 3 { Issue.record("not requeued") }
    }
}
