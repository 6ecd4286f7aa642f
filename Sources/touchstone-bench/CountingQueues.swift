import Foundation
import Synchronization
import Transport

/// Counts the SQS API calls our client makes, by side (`backend`, `agent`) and action (`ReceiveMessage`, …).
///
/// A minimal counter of the bench's own, written while Transport has none: each ``MessageQueue`` method of
/// ``SQSQueue`` is one SQS action (`send` = `SendMessage`, `receive` = `ReceiveMessage`, …), and opening a queue is
/// `GetQueueUrl` + `GetQueueAttributes` (``SQSClient/queue(named:)``). Retries of a failed action (throttling, 5xx)
/// are not seen here; on a healthy loopback server there are none.
final class CallCounter: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    func add(_ side: String, _ action: String) {
        counts.withLock { $0["\(side) \(action)", default: 0] += 1 }
    }

    /// Every count, keyed `side action`.
    var snapshot: [String: Int] { counts.withLock { $0 } }
}

/// A ``QueueProvider`` that counts its calls and hands out counting queues.
struct CountingQueueProvider: QueueProvider {
    let base: any QueueProvider
    let counter: CallCounter
    let side: String

    /// The wrapped provider's own counts (the transport's counters, retries included for SQS).
    var operationCounts: QueueOperationCounts { base.operationCounts }

    func createQueueIfNeeded(named name: String, attributes: QueueAttributes) async throws {
        counter.add(side, "CreateQueue")
        try await base.createQueueIfNeeded(named: name, attributes: attributes)
    }

    func openQueue(named name: String) async throws -> any MessageQueue {
        counter.add(side, "GetQueueUrl")
        counter.add(side, "GetQueueAttributes")
        return CountingQueue(base: try await base.openQueue(named: name), counter: counter, side: side)
    }
}

/// A ``MessageQueue`` that counts each call as the SQS action it makes.
struct CountingQueue: MessageQueue {
    let base: any MessageQueue
    let counter: CallCounter
    let side: String

    /// The wrapped queue's own counts.
    var operationCounts: QueueOperationCounts { base.operationCounts }

    func send(_ body: String, groupID: String, deduplicationID: String) async throws -> SendResult {
        counter.add(side, "SendMessage")
        return try await base.send(body, groupID: groupID, deduplicationID: deduplicationID)
    }

    func sendBatch(_ entries: [SendBatchEntry]) async throws -> [SendBatchResult] {
        counter.add(side, "SendMessageBatch")
        return try await base.sendBatch(entries)
    }

    func receive(maxMessages: Int, waitTime: Duration, visibilityTimeout: Duration?) async throws -> [ReceivedMessage] {
        counter.add(side, "ReceiveMessage")
        return try await base.receive(maxMessages: maxMessages, waitTime: waitTime, visibilityTimeout: visibilityTimeout)
    }

    func delete(receiptHandle: String) async throws {
        counter.add(side, "DeleteMessage")
        try await base.delete(receiptHandle: receiptHandle)
    }

    func changeVisibility(receiptHandle: String, timeout: Duration) async throws {
        counter.add(side, "ChangeMessageVisibility")
        try await base.changeVisibility(receiptHandle: receiptHandle, timeout: timeout)
    }

    func approximateCounts() async throws -> QueueCounts {
        counter.add(side, "GetQueueAttributes")
        return try await base.approximateCounts()
    }
}
