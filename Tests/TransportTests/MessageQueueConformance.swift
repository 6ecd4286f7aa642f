import Foundation
import Testing
import Transport

/// The ``MessageQueue`` contract as checks written against the protocol only, so that the same checks run against
/// the embedded queue (`EmbeddedQueueConformanceTests`) and, later, against the SQS FIFO client.
///
/// Every check takes fresh, empty queues from ``makeQueue`` and lets time pass with ``advanceTime``: the embedded
/// queue moves its injected clock; an SQS run sleeps, which is why no check here advances more than a few seconds.
/// What only the embedded queue can show lives in `EmbeddedQueueTests`: the expiry of the 5-minute deduplication
/// window (an SQS run would sleep 5 minutes, and SQS documents the interval, not the exact moment it ends) and the
/// wake-up by a second store instance on the same file.
///
/// Timing assumptions an SQS harness must honour: a receive with a 1-second wait returns every message that is
/// deliverable (FIFO queues do not sample), and `approximateCounts()` is exact right after a change (SQS's can lag;
/// such a harness may need to re-read).
struct MessageQueueConformance: Sendable {
    /// Makes a new, empty queue with the given attributes on every call.
    var makeQueue: @Sendable (QueueAttributes) async throws -> any MessageQueue
    /// Lets the duration pass as the queue sees time (visibility timeouts).
    var advanceTime: @Sendable (Duration) async throws -> Void

    private func freshQueue() async throws -> any MessageQueue { try await makeQueue(QueueAttributes()) }

    // MARK: Order and groups

    /// Messages of one group come in send order, with the IDs, sequence numbers and attributes the sends returned.
    func deliversAGroupInSendOrder() async throws {
        let queue = try await freshQueue()
        var sent: [SendResult] = []
        for i in 0..<5 { sent.append(try await queue.send("m\(i)", groupID: "g", deduplicationID: "d\(i)")) }
        #expect(sent.allSatisfy { !$0.deduplicated })
        #expect(isStrictlyIncreasing(sent.map(\.sequenceNumber)))

        let received = try await drain(queue, expecting: 5)
        #expect(received.map(\.body) == ["m0", "m1", "m2", "m3", "m4"])
        #expect(received.map(\.messageID) == sent.map(\.messageID))
        #expect(received.map(\.sequenceNumber) == sent.map(\.sequenceNumber))
        #expect(received.map(\.deduplicationID) == ["d0", "d1", "d2", "d3", "d4"])
        #expect(received.allSatisfy { $0.groupID == "g" && $0.receiveCount == 1 })
    }

    /// While a message is in flight, later messages of its group wait; other groups are not held up.
    func inFlightMessageBlocksOnlyItsGroup() async throws {
        let queue = try await freshQueue()
        _ = try await queue.send("a1", groupID: "A", deduplicationID: "a1")
        _ = try await queue.send("a2", groupID: "A", deduplicationID: "a2")
        _ = try await queue.send("b1", groupID: "B", deduplicationID: "b1")

        let first = try await queue.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: .seconds(60))
        #expect(first.map(\.body) == ["a1"])
        let second = try await queue.receive(maxMessages: 10, waitTime: .seconds(1), visibilityTimeout: .seconds(60))
        #expect(second.map(\.body) == ["b1"])
        let blocked = try await queue.receive(maxMessages: 10, waitTime: .zero, visibilityTimeout: .seconds(60))
        #expect(blocked.isEmpty)

        try await queue.delete(receiptHandle: try #require(first.first).receiptHandle)
        let third = try await queue.receive(maxMessages: 10, waitTime: .seconds(1), visibilityTimeout: .seconds(60))
        #expect(third.map(\.body) == ["a2"])
    }

    /// One receive may return several messages of a group; whatever it returns of a group is in order.
    func returnsSeveralMessagesOfAGroupInOrder() async throws {
        let queue = try await freshQueue()
        for i in 0..<4 { _ = try await queue.send("a\(i)", groupID: "A", deduplicationID: "a\(i)") }
        let received = try await queue.receive(maxMessages: 10, waitTime: .seconds(1), visibilityTimeout: .seconds(60))
        #expect(!received.isEmpty)
        #expect(received.map(\.body) == Array(["a0", "a1", "a2", "a3"].prefix(received.count)))
    }

    // MARK: Deduplication

    /// A deduplication ID used in the last 5 minutes enqueues nothing, even after the first message was deleted and
    /// even from another group (the default deduplication scope is the queue).
    func deduplicatesEvenAfterDelete() async throws {
        let queue = try await freshQueue()
        let first = try await queue.send("one", groupID: "g", deduplicationID: "same")
        let duplicate = try await queue.send("two", groupID: "g", deduplicationID: "same")
        #expect(duplicate.deduplicated)
        #expect(duplicate.messageID == first.messageID)
        #expect(try await queue.approximateCounts() == QueueCounts(visible: 1, inFlight: 0))

        let received = try await drain(queue, expecting: 1)
        #expect(received.map(\.body) == ["one"])

        let afterDelete = try await queue.send("three", groupID: "other", deduplicationID: "same")
        #expect(afterDelete.deduplicated)
        #expect(afterDelete.messageID == first.messageID)
        #expect(try await queue.receive(maxMessages: 10, waitTime: .zero, visibilityTimeout: nil).isEmpty)

        let fresh = try await queue.send("four", groupID: "g", deduplicationID: "other")
        #expect(!fresh.deduplicated)
        #expect(fresh.messageID != first.messageID)
    }

    // MARK: Visibility

    /// An undeleted message comes back after its visibility timeout with receive count 2 and a new receipt handle;
    /// the old handle no longer deletes it.
    func redeliversAfterTheVisibilityTimeout() async throws {
        let queue = try await freshQueue()
        let sent = try await queue.send("work", groupID: "g", deduplicationID: "w")
        let firstBatch = try await queue.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: .seconds(2))
        let first = try #require(firstBatch.first)
        #expect(first.receiveCount == 1)
        #expect(try await queue.receive(maxMessages: 1, waitTime: .zero, visibilityTimeout: nil).isEmpty)

        try await advanceTime(.seconds(3))
        let secondBatch = try await queue.receive(
            maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: .seconds(30))
        let second = try #require(secondBatch.first)
        #expect(second.messageID == sent.messageID)
        #expect(second.receiveCount == 2)
        #expect(second.receiptHandle != first.receiptHandle)

        let stale = await #expect(throws: QueueError.self) {
            try await queue.delete(receiptHandle: first.receiptHandle)
        }
        #expect(stale?.code == .receiptHandleIsInvalid)
        try await queue.delete(receiptHandle: second.receiptHandle)
        #expect(try await queue.approximateCounts() == QueueCounts(visible: 0, inFlight: 0))
    }

    /// A receive without its own visibility timeout takes the queue's.
    func usesTheQueueVisibilityTimeoutByDefault() async throws {
        let queue = try await makeQueue(QueueAttributes(visibilityTimeout: .seconds(2)))
        _ = try await queue.send("work", groupID: "g", deduplicationID: "w")
        let first = try await queue.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: nil)
        #expect(first.count == 1)
        try await advanceTime(.seconds(1))
        #expect(try await queue.receive(maxMessages: 1, waitTime: .zero, visibilityTimeout: nil).isEmpty)
        try await advanceTime(.seconds(2))
        let again = try await queue.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: nil)
        #expect(again.map(\.receiveCount) == [2])
    }

    /// A visibility timeout of zero leaves a received message deliverable at once.
    func zeroVisibilityTimeoutLeavesTheMessageDeliverable() async throws {
        let queue = try await freshQueue()
        _ = try await queue.send("work", groupID: "g", deduplicationID: "w")
        let first = try await queue.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: .zero)
        let second = try await queue.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: .seconds(30))
        #expect(first.map(\.receiveCount) == [1])
        #expect(second.map(\.receiveCount) == [2])
        #expect(second.map(\.messageID) == first.map(\.messageID))
    }

    /// `changeVisibility` extends the timeout of the current receive (a heartbeat) and zero gives the message back;
    /// an old handle, an unknown handle and an out-of-range timeout are refused.
    func changeVisibilityExtendsAndReleases() async throws {
        let queue = try await freshQueue()
        _ = try await queue.send("work", groupID: "g", deduplicationID: "w")
        let firstBatch = try await queue.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: .seconds(2))
        let first = try #require(firstBatch.first)

        try await queue.changeVisibility(receiptHandle: first.receiptHandle, timeout: .seconds(60))
        try await advanceTime(.seconds(3))
        #expect(try await queue.receive(maxMessages: 1, waitTime: .zero, visibilityTimeout: nil).isEmpty)

        try await queue.changeVisibility(receiptHandle: first.receiptHandle, timeout: .zero)
        let againBatch = try await queue.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: .seconds(60))
        let again = try #require(againBatch.first)
        #expect(again.messageID == first.messageID)
        #expect(again.receiveCount == 2)

        let stale = await #expect(throws: QueueError.self) {
            try await queue.changeVisibility(receiptHandle: first.receiptHandle, timeout: .seconds(10))
        }
        #expect(stale?.code == .receiptHandleIsInvalid)
        let unknown = await #expect(throws: QueueError.self) {
            try await queue.changeVisibility(receiptHandle: "no-such-handle", timeout: .seconds(10))
        }
        #expect(unknown?.code == .receiptHandleIsInvalid)
        let tooLong = await #expect(throws: QueueError.self) {
            try await queue.changeVisibility(receiptHandle: again.receiptHandle, timeout: .seconds(43_201))
        }
        #expect(tooLong?.code == .invalidParameter)
        try await queue.delete(receiptHandle: again.receiptHandle)
    }

    /// Once the visibility timeout has passed, `changeVisibility` reports the message is not in flight.
    func changeVisibilityRefusesAMessageNoLongerInFlight() async throws {
        let queue = try await freshQueue()
        _ = try await queue.send("work", groupID: "g", deduplicationID: "w")
        let batch = try await queue.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: .seconds(1))
        let message = try #require(batch.first)
        try await advanceTime(.seconds(2))
        let error = await #expect(throws: QueueError.self) {
            try await queue.changeVisibility(receiptHandle: message.receiptHandle, timeout: .seconds(30))
        }
        #expect(error?.code == .messageNotInflight)
    }

    /// Deleting with a handle no receive gave out is refused.
    func refusesAnUnknownReceiptHandle() async throws {
        let queue = try await freshQueue()
        let error = await #expect(throws: QueueError.self) { try await queue.delete(receiptHandle: "no-such-handle") }
        #expect(error?.code == .receiptHandleIsInvalid)
    }

    // MARK: Batches

    /// A batch of 10 goes in order; 11 entries, repeated or malformed entry IDs and an empty batch are refused whole.
    func sendsBatchesOfUpToTenEntries() async throws {
        let queue = try await freshQueue()
        let entries = (0..<10).map {
            SendBatchEntry(id: "e\($0)", body: "b\($0)", groupID: "g", deduplicationID: "d\($0)")
        }
        let results = try await queue.sendBatch(entries)
        #expect(results.map(\.id) == entries.map(\.id))
        let sent = try results.map { try $0.result.get() }
        #expect(isStrictlyIncreasing(sent.map(\.sequenceNumber)))
        let received = try await drain(queue, expecting: 10)
        #expect(received.map(\.body) == entries.map(\.body))

        let eleven = (0..<11).map { SendBatchEntry(id: "x\($0)", body: "x", groupID: "g", deduplicationID: "x\($0)") }
        let tooMany = await #expect(throws: QueueError.self) { _ = try await queue.sendBatch(eleven) }
        #expect(tooMany?.code == .tooManyEntriesInBatch)

        let repeated = [
            SendBatchEntry(id: "same", body: "1", groupID: "g", deduplicationID: "r1"),
            SendBatchEntry(id: "same", body: "2", groupID: "g", deduplicationID: "r2"),
        ]
        let notDistinct = await #expect(throws: QueueError.self) { _ = try await queue.sendBatch(repeated) }
        #expect(notDistinct?.code == .batchEntryIdsNotDistinct)

        let empty = await #expect(throws: QueueError.self) { _ = try await queue.sendBatch([]) }
        #expect(empty?.code == .emptyBatch)

        let malformed = [SendBatchEntry(id: "not valid!", body: "1", groupID: "g", deduplicationID: "m1")]
        let badID = await #expect(throws: QueueError.self) { _ = try await queue.sendBatch(malformed) }
        #expect(badID?.code == .invalidBatchEntryId)

        #expect(try await queue.approximateCounts() == QueueCounts(visible: 0, inFlight: 0))
    }

    /// An entry over the queue's maximum message size, or with a character SQS refuses, fails alone; the others go.
    func failsABadBatchEntryAlone() async throws {
        let queue = try await makeQueue(QueueAttributes(maximumMessageSize: 1_024))
        let entries = [
            SendBatchEntry(id: "ok1", body: "first", groupID: "g", deduplicationID: "o1"),
            SendBatchEntry(id: "big", body: String(repeating: "x", count: 1_025), groupID: "g", deduplicationID: "b"),
            SendBatchEntry(id: "ok2", body: "second", groupID: "g", deduplicationID: "o2"),
            SendBatchEntry(id: "nul", body: "bad\u{0}", groupID: "g", deduplicationID: "n"),
        ]
        let results = try await queue.sendBatch(entries)
        #expect(results.map(\.id) == ["ok1", "big", "ok2", "nul"])
        #expect(errorCode(results[0]) == nil)
        #expect(errorCode(results[1]) == .messageTooLarge)
        #expect(errorCode(results[2]) == nil)
        #expect(errorCode(results[3]) == .invalidParameter)
        let received = try await drain(queue, expecting: 2)
        #expect(received.map(\.body) == ["first", "second"])
    }

    /// The bodies of a batch may add up to 1 MiB (1,048,576 bytes) and no more.
    func refusesABatchOverOneMebibyteInTotal() async throws {
        let queue = try await freshQueue()
        let atLimit = (0..<8).map {
            SendBatchEntry(
                id: "e\($0)", body: String(repeating: "a", count: 131_072), groupID: "g", deduplicationID: "a\($0)")
        }
        let results = try await queue.sendBatch(atLimit)
        #expect(results.allSatisfy { errorCode($0) == nil })

        let overLimit = (0..<9).map {
            SendBatchEntry(
                id: "e\($0)", body: String(repeating: "b", count: 120_000), groupID: "g", deduplicationID: "b\($0)")
        }
        let error = await #expect(throws: QueueError.self) { _ = try await queue.sendBatch(overLimit) }
        #expect(error?.code == .batchRequestTooLong)
        #expect(try await queue.approximateCounts() == QueueCounts(visible: 8, inFlight: 0))
    }

    // MARK: Message bodies and IDs

    /// The size limit counts UTF-8 bytes, not characters.
    func countsTheSizeLimitInBytes() async throws {
        let small = try await makeQueue(QueueAttributes(maximumMessageSize: 1_024))
        _ = try await small.send(String(repeating: "é", count: 512), groupID: "g", deduplicationID: "exact")
        let overSmall = await #expect(throws: QueueError.self) {
            _ = try await small.send(String(repeating: "é", count: 513), groupID: "g", deduplicationID: "over")
        }
        #expect(overSmall?.code == .messageTooLarge)

        let queue = try await freshQueue()
        // 600,000 characters is under 1,048,576, but at 2 bytes each the body is 1,200,000 bytes.
        let twoByteBody = String(repeating: "é", count: 600_000)
        #expect(twoByteBody.count < 1_048_576 && twoByteBody.utf8.count > 1_048_576)
        let over = await #expect(throws: QueueError.self) {
            _ = try await queue.send(twoByteBody, groupID: "g", deduplicationID: "two-byte")
        }
        #expect(over?.code == .messageTooLarge)
        _ = try await queue.send(String(repeating: "a", count: 1_048_576), groupID: "g", deduplicationID: "max")
        let received = try await drain(queue, expecting: 1)
        #expect(received.first?.body.utf8.count == 1_048_576)
    }

    /// Bodies may hold only the characters SQS allows; group and deduplication IDs only ASCII `!`…`~`, 1–128 long.
    func refusesCharactersSQSDoesNotAllow() async throws {
        let queue = try await freshQueue()
        for body in ["nul\u{0}", "bell\u{7}", "tab-ok but vt\u{B}", "esc\u{1B}", "\u{FFFE}", "\u{FFFF}", ""] {
            let error = await #expect(throws: QueueError.self, "body \(body.unicodeScalars.map(\.value))") {
                _ = try await queue.send(body, groupID: "g", deduplicationID: "bad")
            }
            #expect(error?.code == .invalidParameter)
        }
        for id in ["has space", "", String(repeating: "i", count: 129), "café", "tab\t"] {
            let badGroup = await #expect(throws: QueueError.self) {
                _ = try await queue.send("body", groupID: id, deduplicationID: "d")
            }
            #expect(badGroup?.code == .invalidParameter)
            let badDeduplication = await #expect(throws: QueueError.self) {
                _ = try await queue.send("body", groupID: "g", deduplicationID: id)
            }
            #expect(badDeduplication?.code == .invalidParameter)
        }

        let allowed = "tab\t newline\n cr\r edges \u{20}\u{D7FF}\u{E000}\u{FFFD}\u{10000}\u{10FFFF} emoji 🙂 ünïcødé"
        let punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" + String(repeating: "z", count: 96)
        _ = try await queue.send(allowed, groupID: punctuation, deduplicationID: punctuation)
        let received = try await drain(queue, expecting: 1)
        #expect(received.first?.body == allowed)
        #expect(received.first?.groupID == punctuation)
    }

    // MARK: Long polling

    /// A long poll on an empty queue returns empty after its wait time, not before.
    func longPollReturnsEmptyAfterTheWaitTime() async throws {
        let queue = try await freshQueue()
        let clock = ContinuousClock()
        let start = clock.now
        let messages = try await queue.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: nil)
        let elapsed = clock.now - start
        #expect(messages.isEmpty)
        #expect(elapsed >= .milliseconds(950))
        #expect(elapsed < .seconds(5))
    }

    /// A long poll returns as soon as a message is sent, well before its wait time.
    func longPollReturnsWhenAMessageArrives() async throws {
        let queue = try await freshQueue()
        let clock = ContinuousClock()
        async let poll = timedReceive(queue, waitTime: .seconds(10))
        try await Task.sleep(for: .milliseconds(300))
        let sentAt = clock.now
        _ = try await queue.send("wake", groupID: "g", deduplicationID: "wake")
        let (messages, returnedAt) = try await poll
        #expect(messages.map(\.body) == ["wake"])
        #expect(returnedAt - sentAt < .seconds(1))
    }

    // MARK: Concurrency

    /// Receivers polling at the same time never get the same message.
    func concurrentReceiversNeverShareAMessage() async throws {
        let queue = try await freshQueue()
        for batch in 0..<3 {
            let entries = (0..<10).map {
                SendBatchEntry(
                    id: "e\($0)", body: "\(batch)-\($0)", groupID: "g\(batch)-\($0)", deduplicationID: "\(batch)-\($0)")
            }
            _ = try await queue.sendBatch(entries)
        }
        let ids = try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var got: [String] = []
                    while true {
                        let messages = try await queue.receive(
                            maxMessages: 3, waitTime: .seconds(1), visibilityTimeout: .seconds(120))
                        if messages.isEmpty { return got }
                        got += messages.map(\.messageID)
                    }
                }
            }
            return try await group.reduce(into: [String]()) { $0 += $1 }
        }
        #expect(ids.count == 30)
        #expect(Set(ids).count == 30)
    }

    // MARK: Parameters and counts

    /// Receive parameters outside the SQS ranges are refused.
    func refusesOutOfRangeReceiveParameters() async throws {
        let queue = try await freshQueue()
        let cases: [(Int, Duration, Duration?)] = [
            (0, .zero, nil), (11, .zero, nil), (1, .seconds(21), nil), (1, .seconds(-1), nil),
            (1, .zero, .seconds(43_201)), (1, .zero, .seconds(-1)),
        ]
        for (maxMessages, waitTime, visibilityTimeout) in cases {
            let error = await #expect(
                throws: QueueError.self, "\(maxMessages) \(waitTime) \(String(describing: visibilityTimeout))"
            ) {
                _ = try await queue.receive(
                    maxMessages: maxMessages, waitTime: waitTime, visibilityTimeout: visibilityTimeout)
            }
            #expect(error?.code == .invalidParameter)
        }
    }

    /// Counts follow sends, receives and deletes.
    func countsVisibleAndInFlightMessages() async throws {
        let queue = try await freshQueue()
        #expect(try await queue.approximateCounts() == QueueCounts(visible: 0, inFlight: 0))
        _ = try await queue.send("a1", groupID: "A", deduplicationID: "a1")
        _ = try await queue.send("a2", groupID: "A", deduplicationID: "a2")
        _ = try await queue.send("b1", groupID: "B", deduplicationID: "b1")
        #expect(try await queue.approximateCounts() == QueueCounts(visible: 3, inFlight: 0))
        let received = try await queue.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: .seconds(60))
        #expect(try await queue.approximateCounts() == QueueCounts(visible: 2, inFlight: 1))
        try await queue.delete(receiptHandle: try #require(received.first).receiptHandle)
        #expect(try await queue.approximateCounts() == QueueCounts(visible: 2, inFlight: 0))
    }

    // MARK: Helpers

    /// Receives and deletes until `count` messages came or a 1-second poll returns nothing.
    private func drain(_ queue: any MessageQueue, expecting count: Int) async throws -> [ReceivedMessage] {
        var received: [ReceivedMessage] = []
        while received.count < count {
            let messages = try await queue.receive(
                maxMessages: 10, waitTime: .seconds(1), visibilityTimeout: .seconds(60))
            if messages.isEmpty { break }
            for message in messages { try await queue.delete(receiptHandle: message.receiptHandle) }
            received += messages
        }
        return received
    }

    private func errorCode(_ result: SendBatchResult) -> QueueError.Code? {
        if case .failure(let error) = result.result { return error.code }
        return nil
    }
}

/// Receives once and notes when the receive returned.
extension MessageQueueConformance {
    /// Each call of a handle counts once under its kind in the handle's ``MessageQueue/operationCounts``.
    func countsItsOperations() async throws {
        let queue = try await freshQueueForCounting()
        #expect(queue.operationCounts == QueueOperationCounts())
        _ = try await queue.send("a", groupID: "g", deduplicationID: "a")
        let received = try await queue.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: .seconds(30))
        let message = try #require(received.first)
        try await queue.changeVisibility(receiptHandle: message.receiptHandle, timeout: .seconds(60))
        try await queue.delete(receiptHandle: message.receiptHandle)
        _ = try await queue.approximateCounts()
        #expect(
            queue.operationCounts
                == QueueOperationCounts(sends: 1, receives: 1, deletes: 1, visibilityChanges: 1, other: 1))
        #expect(queue.operationCounts.total == 5)
    }

    private func freshQueueForCounting() async throws -> any MessageQueue { try await makeQueue(QueueAttributes()) }
}

func timedReceive(_ queue: any MessageQueue, waitTime: Duration) async throws -> (
    [ReceivedMessage], ContinuousClock.Instant
) {
    let messages = try await queue.receive(maxMessages: 1, waitTime: waitTime, visibilityTimeout: nil)
    return (messages, ContinuousClock.now)
}

/// True when each decimal string is numerically greater than the one before (SQS's exceed 64 bits).
func isStrictlyIncreasing(_ numbers: [String]) -> Bool {
    func normalized(_ number: String) -> String {
        let trimmed = number.drop(while: { $0 == "0" })
        return trimmed.isEmpty ? "0" : String(trimmed)
    }
    return zip(numbers, numbers.dropFirst()).allSatisfy { previous, next in
        let (a, b) = (normalized(previous), normalized(next))
        return a.count != b.count ? a.count < b.count : a < b
    }
}
