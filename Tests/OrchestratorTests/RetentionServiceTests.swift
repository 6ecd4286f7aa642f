import Domain
import EventStore
import Foundation
import Logging
import Orchestrator
import Projections
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing

/// A fake clock (time moves only when the test says): the retention service's daily interval, tested without
/// waiting a day.
final class ManualClock: Clock, Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct State {
        var now = Duration.zero
        var sleepers: [(deadline: Duration, continuation: CheckedContinuation<Void, any Error>)] = []
        var sleeperWaiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    var now: Instant { Instant(offset: state.withLock { $0.now }) }
    var minimumResolution: Duration { .zero }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>]? in
                guard deadline.offset > state.now else { return nil }
                state.sleepers.append((deadline.offset, continuation))
                defer { state.sleeperWaiters.removeAll() }
                return state.sleeperWaiters
            }
            guard let waiters else { return continuation.resume() }
            for waiter in waiters { waiter.resume() }
        }
    }

    /// Returns once something sleeps on this clock.
    func waitForSleeper() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state in
                if state.sleepers.isEmpty { state.sleeperWaiters.append(continuation) }
                return !state.sleepers.isEmpty
            }
            if ready { continuation.resume() }
        }
    }

    /// Moves time on, waking the sleepers whose deadline has come.
    func advance(by duration: Duration) {
        let due = state.withLock { state in
            state.now += duration
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Ends every sleep with a cancellation (the test's teardown).
    func cancelAll() {
        let all = state.withLock { state in
            defer { state.sleepers.removeAll() }
            return state.sleepers
        }
        for sleeper in all { sleeper.continuation.resume(throwing: CancellationError()) }
    }
}

@Suite(.timeLimit(.minutes(1)))
struct RetentionServiceTests {
    @Test func serveAppliesThePolicyOnceAnIntervalHasPassedAndRecordsTheRun() async throws {
        let directory = TemporaryDirectory("retention-service")
        let log = try TouchstoneLog(path: directory.file("touchstone.db"))
        try FileManager.default.createDirectory(atPath: directory.file("inputs"), withIntermediateDirectories: true)
        let blob = directory.file("inputs/" + String(repeating: "ab", count: 32))
        try Data(repeating: 1, count: 1000).write(to: URL(fileURLWithPath: blob))
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-7200)], ofItemAtPath: blob)
        let clock = ManualClock()
        let service = RetentionService(
            stateDirectory: directory.path, log: log, policy: RetentionPolicy(days: 30), interval: .seconds(86_400),
            clock: clock, logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await service.run() }
            // Started: it sleeps a whole interval first; nothing is collected at start.
            await clock.waitForSleeper()
            #expect(FileManager.default.fileExists(atPath: blob))
            #expect(try await log.store.lastPosition() == 0)
            clock.advance(by: .seconds(86_400))
            let position = try await log.store.waitForAppend(after: 0, timeout: .seconds(30))
            #expect(position == 1)
            let events = try await log.events(after: 0)
            guard case .garbageCollected(let run) = events.first?.event else {
                Issue.record("expected maintenance.gc-completed, got \(events)")
                return
            }
            #expect(run.removed == [.init(kind: "input", path: "inputs/" + String(repeating: "ab", count: 32), bytes: 1000)])
            #expect(run.bytesFreed == 1000)
            #expect(events.first?.actor == "backend")
            #expect(!FileManager.default.fileExists(atPath: blob))
            // Then it sleeps another interval.
            await clock.waitForSleeper()
            group.cancelAll()
            clock.cancelAll()
        }
    }
}
