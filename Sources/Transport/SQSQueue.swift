import Foundation
import Synchronization

/// One SQS FIFO queue, as a ``MessageQueue``.
///
/// Everything SQS would refuse for a reason the client can see is refused before sending, with the same codes as
/// ``EmbeddedQueue``: bodies over the queue's `MaximumMessageSize` in UTF-8 bytes or with characters outside SQS's
/// allowed set, group and deduplication IDs outside 1–128 ASCII `!`…`~`, batches of more than 10 entries or more than
/// 1 MiB of bodies, out-of-range receive parameters. Sequence numbers stay strings (they exceed 64 bits).
///
/// SQS does not say whether a send was deduplicated: it answers a duplicate with the first message's ID and sequence
/// number. ``SendResult/deduplicated`` is therefore true when this handle's own earlier send, in the last 5 minutes,
/// got the same message ID; a duplicate of another process's send reports `false`.
public final class SQSQueue: MessageQueue {
    /// The queue's name, for example `touchstone-gpu-01-0-req.fifo`.
    public let name: String
    /// The queue's URL, as `GetQueueUrl` gave it.
    public let url: String
    /// The queue's `MaximumMessageSize` in bytes, read when the handle was made.
    public let maximumMessageSize: Int
    /// The client, counting this handle's requests in ``operationCounts`` as well as in its own.
    let client: SQSClient
    /// Message IDs this handle's sends got, with when, for ``SendResult/deduplicated``.
    private let sentMessageIDs = Mutex<[String: ContinuousClock.Instant]>([:])

    private let operations: QueueOperationCounter

    init(client: SQSClient, name: String, url: String, maximumMessageSize: Int) {
        let operations = QueueOperationCounter()
        self.operations = operations
        self.client = client.counting(into: operations)
        self.name = name
        self.url = url
        self.maximumMessageSize = maximumMessageSize
    }

    /// The requests this handle sent to SQS, by kind (each retry counts: SQS bills requests).
    public var operationCounts: QueueOperationCounts { operations.counts }

    /// Sends one message (`SendMessage`).
    ///
    /// - Parameters:
    ///   - body: At most ``maximumMessageSize`` UTF-8 bytes of allowed characters.
    ///   - groupID: `MessageGroupId`, 1–128 ASCII `!`…`~`.
    ///   - deduplicationID: `MessageDeduplicationId`, 1–128 ASCII `!`…`~`.
    /// - Returns: Message ID, sequence number, and whether this handle saw the message ID before (see the type).
    /// - Throws: ``QueueError`` `.messageTooLarge`, `.invalidParameter`, `.queueDoesNotExist`, and those of any SQS
    ///   call (`.accessDenied`, `.invalidSignature`, `.throttled`, `.serviceUnavailable`, `.connectionFailed`, …).
    public func send(_ body: String, groupID: String, deduplicationID: String) async throws -> SendResult {
        try SQSLimits.validateID(groupID, "message group ID")
        try SQSLimits.validateID(deduplicationID, "deduplication ID")
        try SQSLimits.validateBodyCharacters(body)
        try SQSLimits.validateBodySize(body, maximumSize: maximumMessageSize, queue: name)
        let response: SendMessageResponse = try await client.call(
            "SendMessage",
            SendMessageRequest(
                QueueUrl: url, MessageBody: body, MessageGroupId: groupID, MessageDeduplicationId: deduplicationID))
        return try result(
            messageID: response.MessageId, sequenceNumber: response.SequenceNumber, operation: "SendMessage")
    }

    /// Sends up to 10 messages (`SendMessageBatch`); entries that fail client-side validation are not sent.
    ///
    /// - Parameter entries: 1–10 entries with distinct IDs of 1–80 letters, digits, `-`, `_`, bodies adding up to at
    ///   most 1 MiB (1,048,576 bytes, SQS API reference, `SendMessageBatch`).
    /// - Returns: One result per entry in the order given: SQS's `Successful` and `Failed` entries, and the
    ///   client-side failures.
    /// - Throws: ``QueueError`` `.emptyBatch`, `.tooManyEntriesInBatch`, `.invalidBatchEntryId`,
    ///   `.batchEntryIdsNotDistinct`, `.batchRequestTooLong` for the whole batch, and those of any SQS call.
    public func sendBatch(_ entries: [SendBatchEntry]) async throws -> [SendBatchResult] {
        try Self.validateBatchShape(entries.map(\.id), queue: name)
        let total = entries.reduce(0) { $0 + $1.body.utf8.count }
        guard total <= SQSLimits.maximumBatchPayload else {
            throw QueueError(
                .batchRequestTooLong,
                "the bodies of a batch for queue \(name) add up to \(total) bytes, over the batch limit of "
                    + "1,048,576 bytes")
        }
        var results: [String: Result<SendResult, QueueError>] = [:]
        var toSend: [SendMessageBatchRequest.Entry] = []
        for entry in entries {
            do throws(QueueError) {
                try SQSLimits.validateID(entry.groupID, "message group ID")
                try SQSLimits.validateID(entry.deduplicationID, "deduplication ID")
                try SQSLimits.validateBodyCharacters(entry.body)
                try SQSLimits.validateBodySize(entry.body, maximumSize: maximumMessageSize, queue: name)
                toSend.append(
                    .init(
                        Id: entry.id, MessageBody: entry.body, MessageGroupId: entry.groupID,
                        MessageDeduplicationId: entry.deduplicationID))
            } catch {
                results[entry.id] = .failure(error)
            }
        }
        if !toSend.isEmpty {
            let response: SendMessageBatchResponse = try await client.call(
                "SendMessageBatch", SendMessageBatchRequest(QueueUrl: url, Entries: toSend))
            for success in response.Successful ?? [] {
                results[success.Id] = Result { () throws(QueueError) in
                    try result(
                        messageID: success.MessageId, sequenceNumber: success.SequenceNumber,
                        operation: "SendMessageBatch")
                }
            }
            for failure in response.Failed ?? [] {
                let error = SQSErrorDecoder.entryError(
                    code: failure.Code, message: failure.Message, operation: "SendMessageBatch")
                results[failure.Id] = .failure(error)
            }
        }
        return entries.map { entry in
            SendBatchResult(
                id: entry.id,
                result: results[entry.id]
                    ?? .failure(
                        QueueError(
                            .unexpectedResponse, "SQS SendMessageBatch said nothing about entry \(entry.id)")))
        }
    }

    /// Receives up to `maxMessages` messages (`ReceiveMessage`), long-polling up to `waitTime`, with every system
    /// attribute (`MessageSystemAttributeNames` `All`).
    ///
    /// Durations are sent as whole seconds, rounded up. Retries of one receive reuse its `ReceiveRequestAttemptId`,
    /// so that SQS returns the same messages to a retry of a receive whose response was lost (SQS API reference,
    /// `ReceiveMessage`). Cancelling the task ends the long poll at once.
    ///
    /// - Parameters:
    ///   - maxMessages: 1–10.
    ///   - waitTime: 0–20 seconds.
    ///   - visibilityTimeout: 0–43,200 seconds, or `nil` for the queue's.
    /// - Returns: The messages, in order within each group.
    /// - Throws: ``QueueError`` `.invalidParameter`, `.queueDoesNotExist`, and those of any SQS call;
    ///   `CancellationError` when the task is cancelled.
    public func receive(maxMessages: Int, waitTime: Duration, visibilityTimeout: Duration?) async throws
        -> [ReceivedMessage]
    {
        try SQSLimits.validateReceive(
            maxMessages: maxMessages, waitTime: waitTime, visibilityTimeout: visibilityTimeout)
        let request = ReceiveMessageRequest(
            QueueUrl: url, MaxNumberOfMessages: maxMessages, WaitTimeSeconds: Int(SQSClient.wholeSeconds(waitTime)),
            VisibilityTimeout: visibilityTimeout.map { Int(SQSClient.wholeSeconds($0)) },
            AttributeNames: ["All"], MessageSystemAttributeNames: ["All"],
            ReceiveRequestAttemptId: UUID().uuidString)
        let response: ReceiveMessageResponse = try await client.call(
            "ReceiveMessage", request, extraTime: .seconds(SQSClient.wholeSeconds(waitTime)))
        return try response.received(queue: name)
    }

    /// Deletes a received message (`DeleteMessage`).
    ///
    /// - Parameter receiptHandle: The handle of the message's latest receive.
    /// - Throws: ``QueueError`` `.receiptHandleIsInvalid`, `.queueDoesNotExist`, and those of any SQS call.
    public func delete(receiptHandle: String) async throws {
        let _: EmptyResponse = try await client.call(
            "DeleteMessage", ReceiptRequest(QueueUrl: url, ReceiptHandle: receiptHandle))
    }

    /// Deletes up to 10 received messages (`DeleteMessageBatch`); each succeeds or fails on its own.
    ///
    /// - Parameter receiptHandles: 1–10 handles; entry IDs are their positions.
    /// - Returns: One result per handle, in order.
    /// - Throws: ``QueueError`` `.emptyBatch`, `.tooManyEntriesInBatch`, and those of any SQS call.
    public func deleteBatch(receiptHandles: [String]) async throws -> [Result<Void, QueueError>] {
        let ids = receiptHandles.indices.map { "m\($0)" }
        try Self.validateBatchShape(ids, queue: name)
        let response: DeleteMessageBatchResponse = try await client.call(
            "DeleteMessageBatch",
            DeleteMessageBatchRequest(
                QueueUrl: url, Entries: zip(ids, receiptHandles).map { .init(Id: $0, ReceiptHandle: $1) }))
        var failures: [String: QueueError] = [:]
        for failure in response.Failed ?? [] {
            failures[failure.Id] = SQSErrorDecoder.entryError(
                code: failure.Code, message: failure.Message, operation: "DeleteMessageBatch")
        }
        let succeeded = Set((response.Successful ?? []).map(\.Id))
        return ids.map { id in
            if let failure = failures[id] { return .failure(failure) }
            if succeeded.contains(id) { return .success(()) }
            return .failure(QueueError(.unexpectedResponse, "SQS DeleteMessageBatch said nothing about entry \(id)"))
        }
    }

    /// Changes the visibility timeout of a message in flight (`ChangeMessageVisibility`), the agent's heartbeat.
    ///
    /// - Parameters:
    ///   - receiptHandle: The handle of the latest receive.
    ///   - timeout: 0–43,200 seconds from now, sent as whole seconds rounded up.
    /// - Throws: ``QueueError`` `.invalidParameter`, `.receiptHandleIsInvalid`, `.messageNotInflight`, and those of
    ///   any SQS call.
    public func changeVisibility(receiptHandle: String, timeout: Duration) async throws {
        try SQSLimits.validateVisibilityTimeout(timeout, "visibility timeout")
        let _: EmptyResponse = try await client.call(
            "ChangeMessageVisibility",
            ChangeVisibilityRequest(
                QueueUrl: url, ReceiptHandle: receiptHandle, VisibilityTimeout: Int(SQSClient.wholeSeconds(timeout))))
    }

    /// `ApproximateNumberOfMessages` and `ApproximateNumberOfMessagesNotVisible` (`GetQueueAttributes`); SQS's are
    /// approximate and may lag a change by about a minute (SQS Developer Guide, "Available CloudWatch metrics").
    ///
    /// - Returns: The counts.
    /// - Throws: ``QueueError`` `.queueDoesNotExist`, `.unexpectedResponse` when a count is missing, and those of
    ///   any SQS call.
    public func approximateCounts() async throws -> QueueCounts {
        let attributes = try await client.queueAttributes(
            url: url, names: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        guard let visible = attributes["ApproximateNumberOfMessages"].flatMap(Int.init),
            let inFlight = attributes["ApproximateNumberOfMessagesNotVisible"].flatMap(Int.init)
        else {
            throw QueueError(.unexpectedResponse, "SQS GetQueueAttributes on \(name) returned no message counts")
        }
        return QueueCounts(visible: visible, inFlight: inFlight)
    }

    // MARK: Helpers

    private func result(messageID: String, sequenceNumber: String?, operation: String) throws(QueueError)
        -> SendResult
    {
        guard let sequenceNumber else {
            throw QueueError(
                .unexpectedResponse, "SQS \(operation) on \(name) returned no SequenceNumber; is the queue FIFO?")
        }
        let now = ContinuousClock.now
        let seen = sentMessageIDs.withLock { sent -> Bool in
            if sent.count > 10_000 {
                sent = sent.filter { now - $0.value < SQSLimits.deduplicationInterval }
            }
            if let at = sent[messageID], now - at < SQSLimits.deduplicationInterval { return true }
            sent[messageID] = now
            return false
        }
        return SendResult(messageID: messageID, sequenceNumber: sequenceNumber, deduplicated: seen)
    }

    private static func validateBatchShape(_ ids: [String], queue: String) throws(QueueError) {
        guard !ids.isEmpty else { throw QueueError(.emptyBatch, "a batch for queue \(queue) has no entries") }
        guard ids.count <= SQSLimits.maximumBatchEntries else {
            throw QueueError(
                .tooManyEntriesInBatch, "a batch for queue \(queue) has \(ids.count) entries; at most 10 are allowed")
        }
        for id in ids { try SQSLimits.validateBatchEntryID(id) }
        var seen = Set<String>()
        for id in ids where !seen.insert(id).inserted {
            throw QueueError(.batchEntryIdsNotDistinct, "batch entry ID \(id) appears more than once")
        }
    }
}

// MARK: Wire shapes (SQS API reference, JSON protocol; names as in the API)

struct SendMessageRequest: Encodable {
    var QueueUrl: String
    var MessageBody: String
    var MessageGroupId: String
    var MessageDeduplicationId: String
}

struct SendMessageResponse: Decodable, Sendable {
    var MessageId: String
    var SequenceNumber: String?
}

struct SendMessageBatchRequest: Encodable {
    struct Entry: Encodable {
        var Id: String
        var MessageBody: String
        var MessageGroupId: String
        var MessageDeduplicationId: String
    }
    var QueueUrl: String
    var Entries: [Entry]
}

struct BatchResultErrorEntry: Decodable, Sendable {
    var Id: String
    var Code: String
    var Message: String?
    var SenderFault: Bool?
}

struct SendMessageBatchResponse: Decodable, Sendable {
    struct Success: Decodable, Sendable {
        var Id: String
        var MessageId: String
        var SequenceNumber: String?
    }
    var Successful: [Success]?
    var Failed: [BatchResultErrorEntry]?
}

struct ReceiveMessageRequest: Encodable {
    var QueueUrl: String
    var MaxNumberOfMessages: Int
    var WaitTimeSeconds: Int
    var VisibilityTimeout: Int?
    var AttributeNames: [String]
    var MessageSystemAttributeNames: [String]
    var ReceiveRequestAttemptId: String
}

struct ReceiveMessageResponse: Decodable, Sendable {
    struct Message: Decodable, Sendable {
        var MessageId: String
        var ReceiptHandle: String
        var Body: String?
        var Attributes: [String: String]?
    }
    var Messages: [Message]?
}

struct ReceiptRequest: Encodable {
    var QueueUrl: String
    var ReceiptHandle: String
}

struct ChangeVisibilityRequest: Encodable {
    var QueueUrl: String
    var ReceiptHandle: String
    var VisibilityTimeout: Int
}

struct DeleteMessageBatchRequest: Encodable {
    struct Entry: Encodable {
        var Id: String
        var ReceiptHandle: String
    }
    var QueueUrl: String
    var Entries: [Entry]
}

struct DeleteMessageBatchResponse: Decodable, Sendable {
    struct Success: Decodable, Sendable {
        var Id: String
    }
    var Successful: [Success]?
    var Failed: [BatchResultErrorEntry]?
}
