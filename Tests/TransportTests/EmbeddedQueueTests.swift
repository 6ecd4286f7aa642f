import Foundation
import Synchronization
import Testing
import Transport

/// What only the embedded queue can show: its injected clock, second store instances on one file, and closing.
@Suite(.timeLimit(.minutes(1))) struct EmbeddedQueueTests {
    /// The deduplication window is 300 seconds from the first send (kept out of the conformance suite: an SQS run
    /// would have to sleep 5 minutes, and SQS documents the interval, not the instant it ends).
    @Test func forgetsADeduplicationIDAfterFiveMinutes() async throws {
        let fixture = try EmbeddedQueueFixture()
        let queue = try fixture.makeQueue()
        let first = try await queue.send("one", groupID: "g", deduplicationID: "same")
        let received = try await queue.receive(maxMessages: 1, waitTime: .zero, visibilityTimeout: nil)
        try await queue.delete(receiptHandle: try #require(received.first).receiptHandle)

        fixture.clock.advance(by: .seconds(299))
        let stillRemembered = try await queue.send("two", groupID: "g", deduplicationID: "same")
        #expect(stillRemembered.deduplicated)
        #expect(stillRemembered.messageID == first.messageID)

        fixture.clock.advance(by: .seconds(1))
        let forgotten = try await queue.send("three", groupID: "g", deduplicationID: "same")
        #expect(!forgotten.deduplicated)
        #expect(forgotten.messageID != first.messageID)
        let again = try await queue.receive(maxMessages: 10, waitTime: .zero, visibilityTimeout: nil)
        #expect(again.map(\.body) == ["three"])
    }

    /// One receive takes every message of the oldest open group in order, then the next group's.
    @Test func takesAWholeGroupInOrderThenTheNext() async throws {
        let fixture = try EmbeddedQueueFixture()
        let queue = try fixture.makeQueue()
        for (body, group) in [("a1", "A"), ("b1", "B"), ("a2", "A"), ("b2", "B"), ("a3", "A"), ("c1", "C")] {
            _ = try await queue.send(body, groupID: group, deduplicationID: body)
        }
        let first = try await queue.receive(maxMessages: 4, waitTime: .zero, visibilityTimeout: nil)
        #expect(first.map(\.body) == ["a1", "a2", "a3", "b1"])
        let second = try await queue.receive(maxMessages: 10, waitTime: .zero, visibilityTimeout: nil)
        #expect(second.map(\.body) == ["c1"])
    }

    /// Sequence numbers are 20-digit decimal strings, one apart, per queue.
    @Test func numbersMessagesWithTwentyDigitSequenceNumbers() async throws {
        let fixture = try EmbeddedQueueFixture()
        let queue = try fixture.makeQueue()
        let other = try fixture.makeQueue()
        let a = try await queue.send("a", groupID: "g", deduplicationID: "a")
        let b = try await queue.send("b", groupID: "g", deduplicationID: "b")
        let c = try await other.send("c", groupID: "g", deduplicationID: "c")
        #expect(a.sequenceNumber == "00000000000000000001")
        #expect(b.sequenceNumber == "00000000000000000002")
        #expect(c.sequenceNumber == "00000000000000000001")
    }

    /// A long poll waiting on one store wakes when a second store instance on the same file sends: the path a send
    /// from another process takes (inotify on the database directory), since each store has its own descriptor.
    @Test func longPollIsWokenByASecondStoreOnTheSameFile() async throws {
        let fixture = try EmbeddedQueueFixture()
        let receiver = try fixture.makeQueue()
        let sendingStore = try fixture.secondStore()
        defer { sendingStore.close() }
        let sender = try sendingStore.queue(named: receiver.name)
        let clock = ContinuousClock()
        var fromSendCall: [Duration] = []
        var fromSendReturn: [Duration] = []
        for round in 0..<10 {
            async let poll = timedReceive(receiver, waitTime: .seconds(10))
            try await Task.sleep(for: .milliseconds(100))
            let sendCalled = clock.now
            _ = try await sender.send("wake-\(round)", groupID: "g", deduplicationID: "wake-\(round)")
            let sendReturned = clock.now
            let (messages, returnedAt) = try await poll
            #expect(messages.map(\.body) == ["wake-\(round)"])
            #expect(returnedAt - sendCalled < .seconds(1))
            fromSendCall.append(returnedAt - sendCalled)
            fromSendReturn.append(returnedAt - sendReturned)
            for message in messages { try await receiver.delete(receiptHandle: message.receiptHandle) }
        }
        // Both spans include SQLite commits with synchronous=FULL (the send's, then the receive's claim).
        func summary(_ spans: [Duration]) -> String {
            let sorted = spans.sorted()
            return "median \(milliseconds(sorted[sorted.count / 2])) ms, max \(milliseconds(sorted.last!)) ms"
        }
        print(
            "EmbeddedQueue wake-up by a second store on the same file: send call to receive return",
            summary(fromSendCall), "; send return to receive return", summary(fromSendReturn))
    }

    /// A long poll notices a visibility timeout that expires while it waits, also when the injected clock jumps and
    /// the store is told (``EmbeddedQueueStore/clockMoved()``).
    @Test func longPollWakesWhenAVisibilityTimeoutExpires() async throws {
        let fixture = try EmbeddedQueueFixture()
        let queue = try fixture.makeQueue()
        _ = try await queue.send("work", groupID: "g", deduplicationID: "w")
        _ = try await queue.receive(maxMessages: 1, waitTime: .zero, visibilityTimeout: .seconds(30))
        let clock = ContinuousClock()
        async let poll = timedReceive(queue, waitTime: .seconds(10))
        try await Task.sleep(for: .milliseconds(100))
        let expiredAt = clock.now
        fixture.advance(by: .seconds(31))
        let (messages, returnedAt) = try await poll
        #expect(messages.map(\.receiveCount) == [2])
        #expect(returnedAt - expiredAt < .seconds(2))
    }

    /// Receivers on two store instances never get the same message.
    @Test func receiversOnTwoStoresNeverShareAMessage() async throws {
        let fixture = try EmbeddedQueueFixture()
        let queue = try fixture.makeQueue()
        let otherStore = try fixture.secondStore()
        defer { otherStore.close() }
        let other = try otherStore.queue(named: queue.name)
        for batch in 0..<6 {
            let entries = (0..<10).map {
                SendBatchEntry(
                    id: "e\($0)", body: "\(batch)-\($0)", groupID: "g\(batch)-\($0)", deduplicationID: "\(batch)-\($0)")
            }
            _ = try await queue.sendBatch(entries)
        }
        let receivers: [EmbeddedQueue] = [queue, queue, queue, other, other, other]
        let ids = try await withThrowingTaskGroup(of: [String].self) { group in
            for receiver in receivers {
                group.addTask {
                    var got: [String] = []
                    while true {
                        let messages = try await receiver.receive(
                            maxMessages: 4, waitTime: .zero, visibilityTimeout: .seconds(120))
                        if messages.isEmpty { return got }
                        got += messages.map(\.messageID)
                    }
                }
            }
            return try await group.reduce(into: [String]()) { $0 += $1 }
        }
        #expect(ids.count == 60)
        #expect(Set(ids).count == 60)
    }

    /// Receivers on two stores that delete what they get still see each group strictly in order.
    @Test func receiversOnTwoStoresKeepEachGroupInOrder() async throws {
        let fixture = try EmbeddedQueueFixture()
        let queue = try fixture.makeQueue()
        let otherStore = try fixture.secondStore()
        defer { otherStore.close() }
        let other = try otherStore.queue(named: queue.name)
        for group in ["A", "B", "C"] {
            let entries = (0..<10).map {
                SendBatchEntry(id: "e\($0)", body: "\(group)\($0)", groupID: group, deduplicationID: "\(group)\($0)")
            }
            _ = try await queue.sendBatch(entries)
        }
        let log = ClaimLog()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for receiver in [queue, other, queue, other] {
                group.addTask {
                    while true {
                        let messages = try await receiver.receive(
                            maxMessages: 2, waitTime: .milliseconds(300), visibilityTimeout: .seconds(120))
                        if messages.isEmpty { return }
                        log.append(messages.map(\.body))
                        for message in messages { try await receiver.delete(receiptHandle: message.receiptHandle) }
                    }
                }
            }
            try await group.waitForAll()
        }
        let bodies = log.entries
        #expect(bodies.count == 30)
        for group in ["A", "B", "C"] {
            #expect(bodies.filter { $0.hasPrefix(group) } == (0..<10).map { "\(group)\($0)" })
        }
    }

    /// Closing the store ends a waiting long poll with `.storage`, and later calls fail the same way.
    @Test func closeEndsAWaitingLongPoll() async throws {
        let fixture = try EmbeddedQueueFixture()
        let queue = try fixture.makeQueue()
        let clock = ContinuousClock()
        let start = clock.now
        async let poll = outcome(of: queue.receive(maxMessages: 1, waitTime: .seconds(10), visibilityTimeout: nil))
        try await Task.sleep(for: .milliseconds(200))
        fixture.store.close()
        let error = await poll
        #expect((error as? QueueError)?.code == .storage)
        #expect(clock.now - start < .seconds(2))
        let later = await #expect(throws: QueueError.self) {
            _ = try await queue.send("late", groupID: "g", deduplicationID: "late")
        }
        #expect(later?.code == .storage)
    }

    /// Cancelling the task of a waiting long poll ends it at once.
    @Test func cancellationEndsAWaitingLongPoll() async throws {
        let fixture = try EmbeddedQueueFixture()
        let queue = try fixture.makeQueue()
        let clock = ContinuousClock()
        let start = clock.now
        let outcome = await withTaskGroup(of: (any Error)?.self) { group in
            group.addTask {
                do {
                    _ = try await queue.receive(maxMessages: 1, waitTime: .seconds(10), visibilityTimeout: nil)
                    return nil
                } catch {
                    return error
                }
            }
            try? await Task.sleep(for: .milliseconds(200))
            group.cancelAll()
            return await group.next() ?? nil
        }
        #expect(outcome is CancellationError)
        #expect(clock.now - start < .seconds(2))
    }

    /// A handle on a queue another store deleted reports `.queueDoesNotExist`.
    @Test func handleOfADeletedQueueReportsItMissing() async throws {
        let fixture = try EmbeddedQueueFixture()
        let queue = try fixture.makeQueue()
        _ = try await queue.send("a", groupID: "g", deduplicationID: "a")
        let otherStore = try fixture.secondStore()
        defer { otherStore.close() }
        try otherStore.deleteQueue(name: queue.name)

        let send = await #expect(throws: QueueError.self) {
            _ = try await queue.send("b", groupID: "g", deduplicationID: "b")
        }
        #expect(send?.code == .queueDoesNotExist)
        let receive = await #expect(throws: QueueError.self) {
            _ = try await queue.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: nil)
        }
        #expect(receive?.code == .queueDoesNotExist)
        let counts = await #expect(throws: QueueError.self) { _ = try await queue.approximateCounts() }
        #expect(counts?.code == .queueDoesNotExist)
    }
}

/// The error an async call threw, or nil when it returned.
private func outcome<T>(of call: @autoclosure () async throws -> T) async -> (any Error)? {
    do {
        _ = try await call()
        return nil
    } catch {
        return error
    }
}

/// Bodies in the order receivers got them, shared by concurrent receivers.
private final class ClaimLog: Sendable {
    private let storage = Mutex<[String]>([])
    var entries: [String] { storage.withLock { $0 } }
    func append(_ bodies: [String]) { storage.withLock { $0 += bodies } }
}
