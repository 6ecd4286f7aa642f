import Foundation
import Synchronization
import Testing
@testable import Transport

/// A wall clock frozen at a fixed instant that tests move forward by hand (deduplication windows, visibility).
final class TestClock: Sendable {
    private let offset = Mutex<Duration>(.zero)
    private let start: Date

    init(start: Date = Date(timeIntervalSince1970: 1_800_000_000)) { self.start = start }

    /// The current test time.
    @Sendable func now() -> Date {
        let offset = offset.withLock { $0 }
        let (seconds, attoseconds) = offset.components
        return start.addingTimeInterval(Double(seconds) + Double(attoseconds) / 1e18)
    }

    /// Moves the clock forward.
    func advance(by duration: Duration) { offset.withLock { $0 += duration } }
}

/// A temporary directory holding one queue database, a store on it with a ``TestClock``, and fresh queue names.
final class EmbeddedQueueFixture: Sendable {
    let directory: String
    let path: String
    let clock = TestClock()
    let store: EmbeddedQueueStore
    private let counter = Mutex(0)

    init() throws {
        directory = Self.makeTemporaryDirectory()
        path = directory + "/queues.sqlite"
        store = try EmbeddedQueueStore(path: path, now: clock.now)
    }

    deinit {
        store.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A second store instance on the same file, with its own connections, inotify descriptor and watcher thread.
    func secondStore() throws -> EmbeddedQueueStore { try EmbeddedQueueStore(path: path, now: clock.now) }

    /// Moves the test clock and wakes the store's long polls to look again (a real clock does not jump; the store
    /// only re-checks at a poll's end).
    func advance(by duration: Duration) {
        clock.advance(by: duration)
        store.clockMoved()
    }

    /// Creates a queue with a name not used before in this fixture.
    func makeQueue(_ attributes: QueueAttributes = .init()) throws -> EmbeddedQueue {
        let n = counter.withLock { value in
            value += 1
            return value
        }
        let name = "test-\(n).fifo"
        try store.createQueue(name: name, attributes: attributes)
        return try store.queue(named: name)
    }

    /// The conformance suite bound to this fixture: fresh queues from ``makeQueue(_:)``, time moved by ``clock``.
    var conformance: MessageQueueConformance {
        MessageQueueConformance(
            makeQueue: { attributes in try self.makeQueue(attributes) },
            advanceTime: { duration in self.advance(by: duration) })
    }

    static func makeTemporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "touchstone-transport-\(UUID().uuidString.lowercased())"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// Milliseconds of a `ContinuousClock` duration, for reports.
func milliseconds(_ duration: Duration) -> Double {
    let (seconds, attoseconds) = duration.components
    return Double(seconds) * 1_000 + Double(attoseconds) / 1e15
}
