import Foundation

/// A FIFO message queue with AWS SQS FIFO semantics, as both sides of a channel use it.
///
/// Two implementations share this contract and one conformance suite (`MessageQueueConformance` in the tests):
/// ``EmbeddedQueue`` (a SQLite file, for one host) and, later, the SQS FIFO client.
///
/// Semantics follow the Amazon SQS Developer Guide, "FIFO queue delivery logic" and the `ReceiveMessage`,
/// `SendMessage` and `DeleteMessage` API reference:
/// - Messages of one message group are delivered in the order sent. While a message of a group is in flight
///   (received and not deleted, visibility timeout not expired) no later message of that group is delivered.
/// - A message sent with a deduplication ID already used in the last 5 minutes (300 seconds) is accepted but not
///   enqueued again, even when the first message was already deleted.
/// - A received message becomes visible again after its visibility timeout unless deleted; each receive increments
///   its receive count.
/// - Message bodies are limited to the queue's maximum message size, counted in UTF-8 bytes.
public protocol MessageQueue: Sendable {
    /// Sends one message.
    ///
    /// - Parameters:
    ///   - body: The message body; at most the queue's maximum message size in UTF-8 bytes.
    ///   - groupID: The FIFO message group (`MessageGroupId`); 1–128 characters.
    ///   - deduplicationID: The deduplication ID (`MessageDeduplicationId`); 1–128 characters.
    /// - Returns: The result: message ID, sequence number, and whether it was a duplicate.
    /// - Throws: ``QueueError`` `.messageTooLarge`, `.invalidParameter`, `.queueDoesNotExist`, `.storage`.
    func send(_ body: String, groupID: String, deduplicationID: String) async throws -> SendResult

    /// Sends up to 10 messages; each entry succeeds or fails on its own.
    ///
    /// - Parameter entries: 1–10 entries with unique `id`s.
    /// - Returns: One result per entry, in the order given.
    /// - Throws: ``QueueError`` `.tooManyEntriesInBatch`, `.batchEntryIdsNotDistinct`, `.emptyBatch`,
    ///   `.invalidBatchEntryId` or `.batchRequestTooLong` (bodies adding up to more than 1 MiB) for the whole batch,
    ///   and `.queueDoesNotExist`, `.storage`; per-entry failures (`.messageTooLarge`, `.invalidParameter`) are
    ///   reported in the results.
    func sendBatch(_ entries: [SendBatchEntry]) async throws -> [SendBatchResult]

    /// Receives up to `maxMessages` messages, long-polling up to `waitTime` for the first one.
    ///
    /// Returns as soon as at least one message is available (within about 10 ms of its send, even from another
    /// process), or with an empty array when `waitTime` passes.
    ///
    /// - Parameters:
    ///   - maxMessages: 1–10 (the SQS `MaxNumberOfMessages` range).
    ///   - waitTime: Long-poll duration, 0–20 seconds (the SQS `WaitTimeSeconds` range).
    ///   - visibilityTimeout: How long received messages stay hidden, 0–43,200 seconds; `nil` takes the queue's.
    /// - Throws: ``QueueError`` `.invalidParameter` for out-of-range values, `.queueDoesNotExist`, `.storage`.
    func receive(maxMessages: Int, waitTime: Duration, visibilityTimeout: Duration?) async throws -> [ReceivedMessage]

    /// Deletes a received message by its receipt handle.
    ///
    /// - Throws: ``QueueError`` `.receiptHandleIsInvalid` when the handle is unknown or stale (the message was
    ///   received again since).
    func delete(receiptHandle: String) async throws

    /// Changes the visibility timeout of a message in flight (a heartbeat while a long command runs).
    ///
    /// - Parameters:
    ///   - receiptHandle: The handle of the latest receive.
    ///   - timeout: 0–43,200 seconds, counted from now.
    /// - Throws: ``QueueError`` `.receiptHandleIsInvalid`, `.invalidParameter`, `.messageNotInflight` when the
    ///   visibility timeout has already passed (SQS `MessageNotInflight`).
    func changeVisibility(receiptHandle: String, timeout: Duration) async throws

    /// The approximate number of visible and in-flight messages (`ApproximateNumberOfMessages`,
    /// `ApproximateNumberOfMessagesNotVisible`).
    func approximateCounts() async throws -> QueueCounts

    /// The operations made through this handle so far, by kind (see ``QueueOperationCounter`` for what each
    /// transport counts); benchmarks count the calls an idle server costs with it.
    var operationCounts: QueueOperationCounts { get }
}

/// The outcome of a successful send.
public struct SendResult: Sendable, Equatable {
    /// The message ID (the first message's ID when this send was deduplicated).
    public var messageID: String
    /// The FIFO sequence number, kept as a decimal string because SQS's exceed 64 bits.
    public var sequenceNumber: String
    /// True when the deduplication ID was seen in the last 5 minutes and nothing was enqueued.
    public var deduplicated: Bool

    /// Creates a send result (implementations of ``MessageQueue`` and test doubles use it).
    public init(messageID: String, sequenceNumber: String, deduplicated: Bool) {
        self.messageID = messageID
        self.sequenceNumber = sequenceNumber
        self.deduplicated = deduplicated
    }
}

/// One entry of ``MessageQueue/sendBatch(_:)``.
public struct SendBatchEntry: Sendable, Equatable {
    /// The entry's ID within the batch (unique in the batch).
    public var id: String
    /// The message body, as for ``MessageQueue/send(_:groupID:deduplicationID:)``.
    public var body: String
    /// The message group (`MessageGroupId`).
    public var groupID: String
    /// The deduplication ID (`MessageDeduplicationId`).
    public var deduplicationID: String

    /// Creates an entry.
    public init(id: String, body: String, groupID: String, deduplicationID: String) {
        self.id = id
        self.body = body
        self.groupID = groupID
        self.deduplicationID = deduplicationID
    }
}

/// The result of one batch entry: a ``SendResult`` or the error that entry alone got.
public struct SendBatchResult: Sendable {
    /// The entry's ID, as given in ``SendBatchEntry/id``.
    public var id: String
    /// What the send of this entry gave.
    public var result: Result<SendResult, QueueError>

    /// Creates an entry's result.
    public init(id: String, result: Result<SendResult, QueueError>) {
        self.id = id
        self.result = result
    }
}

/// A message as received, with its delivery attributes.
public struct ReceivedMessage: Sendable, Equatable {
    /// The message ID the send returned.
    public var messageID: String
    /// Valid for ``MessageQueue/delete(receiptHandle:)`` until the message is received again.
    public var receiptHandle: String
    /// The message body.
    public var body: String
    /// The message group (`MessageGroupId`).
    public var groupID: String
    /// The deduplication ID it was sent with (`MessageDeduplicationId`).
    public var deduplicationID: String
    /// Decimal string (see ``SendResult/sequenceNumber``).
    public var sequenceNumber: String
    /// `ApproximateReceiveCount`: 1 on first delivery.
    public var receiveCount: Int
    /// When the message was sent (`SentTimestamp`).
    public var sentAt: Date

    /// Creates a received message (implementations of ``MessageQueue`` and test doubles use it).
    public init(
        messageID: String, receiptHandle: String, body: String, groupID: String, deduplicationID: String,
        sequenceNumber: String, receiveCount: Int, sentAt: Date
    ) {
        self.messageID = messageID
        self.receiptHandle = receiptHandle
        self.body = body
        self.groupID = groupID
        self.deduplicationID = deduplicationID
        self.sequenceNumber = sequenceNumber
        self.receiveCount = receiveCount
        self.sentAt = sentAt
    }
}

/// Approximate message counts of a queue.
public struct QueueCounts: Sendable, Equatable {
    /// Messages not in flight (`ApproximateNumberOfMessages`).
    public var visible: Int
    /// Messages received and neither deleted nor past their visibility timeout
    /// (`ApproximateNumberOfMessagesNotVisible`).
    public var inFlight: Int
    /// Creates counts.
    public init(visible: Int, inFlight: Int) {
        self.visible = visible
        self.inFlight = inFlight
    }
}
