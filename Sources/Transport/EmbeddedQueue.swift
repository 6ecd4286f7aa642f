import FileSignals
import Foundation
import GRDB

/// One FIFO queue of an ``EmbeddedQueueStore``: the ``MessageQueue`` contract on a SQLite file.
///
/// Get one from ``EmbeddedQueueStore/queue(named:)``. It is a small value (the store, the queue's name, its file and
/// its operation counter); copies share them. Semantics are SQS FIFO's, as ``MessageQueue`` describes them:
/// - Messages of a group come in send order; while one is in flight no later message of its group is delivered.
///   One receive may return several messages of one group, in order, then messages of other groups.
/// - Deduplication IDs are remembered for 300 seconds from the first send, also after that message was deleted;
///   a duplicate returns the first message's ID and sequence number with ``SendResult/deduplicated`` set.
/// - Each receive sets a new visibility timeout and a new receipt handle and increments the receive count; only the
///   latest handle deletes the message or changes its visibility.
/// - Sequence numbers are 20-digit zero-padded decimal strings, increasing per queue.
public struct EmbeddedQueue: MessageQueue {
    /// The store that holds the queue.
    public let store: EmbeddedQueueStore
    /// The queue's name, for example `touchstone-gpu-07-1-req.fifo`.
    public let name: String
    /// The SQLite file that holds the queue.
    let file: EmbeddedQueueFile
    private let operations = QueueOperationCounter()

    init(store: EmbeddedQueueStore, name: String, file: EmbeddedQueueFile) {
        self.store = store
        self.name = name
        self.file = file
    }

    /// The operations made through this handle and its copies (each call counts once, however long it waited).
    public var operationCounts: QueueOperationCounts { operations.counts }

    private func record(_ operation: QueueOperation) {
        operations.record(operation)
        store.operations.record(operation)
    }

    private struct QueueRow {
        var visibilityTimeout: Int64
        var maximumMessageSize: Int
    }

    private struct Probe {
        var hasVisible: Bool
        var now: Int64
        var nextVisibleAt: Int64?
    }

    // MARK: Sending

    /// Sends one message, or finds that its deduplication ID was used in the last 300 seconds.
    ///
    /// - Parameters:
    ///   - body: 1 to the queue's maximum message size UTF-8 bytes, of the characters SQS allows
    ///     (`#x9 | #xA | #xD | #x20–#xD7FF | #xE000–#xFFFD | #x10000–#x10FFFF`).
    ///   - groupID: The message group; 1–128 characters of ASCII letters, digits and punctuation.
    ///   - deduplicationID: 1–128 characters of ASCII letters, digits and punctuation.
    /// - Returns: The new message's ID and sequence number, or the first message's with `deduplicated: true`.
    /// - Throws: ``QueueError`` `.messageTooLarge`, `.invalidParameter`, `.queueDoesNotExist`, `.storage`.
    public func send(_ body: String, groupID: String, deduplicationID: String) async throws -> SendResult {
        record(.send)
        try SQSLimits.validateID(groupID, "message group ID")
        try SQSLimits.validateID(deduplicationID, "deduplication ID")
        try SQSLimits.validateBodyCharacters(body)
        let name = name
        let now = store.now
        let result = try await write("cannot send a message to queue \(name)") { db in
            let queue = try Self.queueRow(db, name)
            try SQSLimits.validateBodySize(body, maximumSize: queue.maximumMessageSize, queue: name)
            let nowMs = EmbeddedQueueStore.milliseconds(now())
            try Self.forgetExpiredDeduplicationIDs(db, name, nowMs)
            return try Self.insert(db, name, body: body, groupID: groupID, deduplicationID: deduplicationID, nowMs)
        }
        if !result.deduplicated { store.doorbells.ring(name) }
        return result
    }

    /// Sends up to 10 messages in one transaction; each entry succeeds or fails on its own.
    ///
    /// Entries are sent in order, so a later entry with the deduplication ID of an earlier one is deduplicated.
    ///
    /// - Parameter entries: 1–10 entries with distinct IDs (1–80 characters of ASCII letters, digits, `-`, `_`),
    ///   whose bodies add up to at most 1,048,576 UTF-8 bytes (SQS's limit for a whole batch, whatever the queue's
    ///   maximum message size).
    /// - Returns: One result per entry, in the order given; an entry fails alone with `.messageTooLarge` (over the
    ///   queue's maximum message size) or `.invalidParameter`.
    /// - Throws: ``QueueError`` for the whole batch: `.emptyBatch`, `.tooManyEntriesInBatch`, `.invalidBatchEntryId`,
    ///   `.batchEntryIdsNotDistinct`, `.batchRequestTooLong`, `.queueDoesNotExist`, `.storage`.
    public func sendBatch(_ entries: [SendBatchEntry]) async throws -> [SendBatchResult] {
        record(.send)
        guard !entries.isEmpty else { throw QueueError(.emptyBatch, "a batch for queue \(name) has no entries") }
        guard entries.count <= SQSLimits.maximumBatchEntries else {
            throw QueueError(
                .tooManyEntriesInBatch, "a batch for queue \(name) has \(entries.count) entries; at most 10 are allowed"
            )
        }
        for entry in entries { try SQSLimits.validateBatchEntryID(entry.id) }
        var seen = Set<String>()
        for entry in entries where !seen.insert(entry.id).inserted {
            throw QueueError(.batchEntryIdsNotDistinct, "batch entry ID \(entry.id) appears more than once")
        }
        let total = entries.reduce(0) { $0 + $1.body.utf8.count }
        guard total <= SQSLimits.maximumBatchPayload else {
            throw QueueError(
                .batchRequestTooLong,
                "the bodies of a batch for queue \(name) add up to \(total) bytes, "
                    + "over the batch limit of 1,048,576 bytes"
            )
        }
        let checked: [(SendBatchEntry, QueueError?)] = entries.map { entry in
            do throws(QueueError) {
                try SQSLimits.validateID(entry.groupID, "message group ID")
                try SQSLimits.validateID(entry.deduplicationID, "deduplication ID")
                try SQSLimits.validateBodyCharacters(entry.body)
                return (entry, nil)
            } catch {
                return (entry, error)
            }
        }
        let name = name
        let now = store.now
        let results = try await write("cannot send a batch to queue \(name)") { db in
            let queue = try Self.queueRow(db, name)
            let nowMs = EmbeddedQueueStore.milliseconds(now())
            try Self.forgetExpiredDeduplicationIDs(db, name, nowMs)
            return try checked.map { entry, error -> SendBatchResult in
                if let error { return SendBatchResult(id: entry.id, result: .failure(error)) }
                do throws(QueueError) {
                    try SQSLimits.validateBodySize(entry.body, maximumSize: queue.maximumMessageSize, queue: name)
                } catch {
                    return SendBatchResult(id: entry.id, result: .failure(error))
                }
                let sent = try Self.insert(
                    db, name, body: entry.body, groupID: entry.groupID, deduplicationID: entry.deduplicationID, nowMs)
                return SendBatchResult(id: entry.id, result: .success(sent))
            }
        }
        let sentAny = results.contains { entry in
            if case .success(let sent) = entry.result { return !sent.deduplicated }
            return false
        }
        if sentAny { store.doorbells.ring(name) }
        return results
    }

    // MARK: Receiving

    /// Receives up to `maxMessages` messages, long-polling up to `waitTime` for the first one.
    ///
    /// Returns as soon as a message is visible: a send to this queue through this store wakes the poll directly, a
    /// send by another store instance or process wakes it through the queue's doorbell (inotify) within milliseconds;
    /// writes to other queues never wake it. A visibility timeout that expires during the wait is waited for exactly,
    /// and the poll checks once more when `waitTime` ends. While waiting the poll is suspended (no thread is blocked,
    /// no CPU is used, nothing is re-checked). The claim itself runs in an `IMMEDIATE` transaction, so two receivers
    /// in any processes never get the same message.
    ///
    /// - Parameters:
    ///   - maxMessages: 1–10 (`MaxNumberOfMessages`).
    ///   - waitTime: 0–20 seconds (`WaitTimeSeconds`); zero checks once and returns.
    ///   - visibilityTimeout: 0–43,200 seconds; `nil` takes the queue's.
    /// - Returns: The messages, oldest group first and in order within a group; empty when `waitTime` passed.
    /// - Throws: ``QueueError`` `.invalidParameter`, `.queueDoesNotExist`, `.storage` (also when the store is
    ///   closed during the wait); `CancellationError` when the task is cancelled while waiting.
    public func receive(maxMessages: Int, waitTime: Duration, visibilityTimeout: Duration?) async throws
        -> [ReceivedMessage]
    {
        record(.receive)
        try SQSLimits.validateReceive(
            maxMessages: maxMessages, waitTime: waitTime, visibilityTimeout: visibilityTimeout)
        let clock = ContinuousClock()
        let deadline = clock.now + waitTime
        while true {
            try store.checkOpen()
            let signal = store.doorbells.signal(for: name)
            let generation = signal.generation
            let probe = try await probe()
            if probe.hasVisible {
                let messages = try await claim(maxMessages: maxMessages, visibilityTimeout: visibilityTimeout)
                if !messages.isEmpty { return messages }
            }
            let remaining = deadline - clock.now
            if remaining <= .zero { return [] }
            try Task.checkCancellation()
            try store.checkOpen()
            var pause = remaining
            if let recheck = store.recheckInterval { pause = min(pause, recheck) }
            if let next = probe.nextVisibleAt { pause = min(pause, .milliseconds(max(1, next - probe.now))) }
            await signal.wait(after: generation, timeout: pause)
            if signal.generation != generation { store.countWake(of: name) }
            try Task.checkCancellation()
        }
    }

    /// A read-only look: is any message deliverable, and when does the next in-flight one become visible?
    private func probe() async throws -> Probe {
        let name = name
        let now = store.now
        return try await read("cannot read queue \(name)") { db in
            let nowMs = EmbeddedQueueStore.milliseconds(now())
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT
                        EXISTS (SELECT 1 FROM queues WHERE name = :queue) AS queue_exists,
                        EXISTS (
                            SELECT 1 FROM messages WHERE queue = :queue
                            GROUP BY group_id HAVING max(visible_at_ms) <= :now
                        ) AS has_visible,
                        (SELECT min(visible_at_ms) FROM messages WHERE queue = :queue AND visible_at_ms > :now)
                            AS next_visible
                    """, arguments: ["queue": name, "now": nowMs])!
            guard row["queue_exists"] as Bool else {
                throw QueueError(.queueDoesNotExist, "queue \(name) does not exist")
            }
            return Probe(hasVisible: row["has_visible"], now: nowMs, nextVisibleAt: row["next_visible"])
        }
    }

    /// Claims up to `maxMessages` deliverable messages under the write lock.
    private func claim(maxMessages: Int, visibilityTimeout: Duration?) async throws -> [ReceivedMessage] {
        let name = name
        let now = store.now
        let messages = try await write("cannot receive from queue \(name)") { db in
            let queue = try Self.queueRow(db, name)
            let timeout = visibilityTimeout?.wholeMilliseconds ?? queue.visibilityTimeout
            let nowMs = EmbeddedQueueStore.milliseconds(now())
            // A group is open when none of its messages is in flight; its messages go out in order, oldest
            // group first.
            let rows = try Row.fetchAll(
                db,
                sql: """
                    WITH open_groups AS (
                        SELECT group_id, min(sequence) AS head FROM messages
                        WHERE queue = :queue
                        GROUP BY group_id HAVING max(visible_at_ms) <= :now
                    )
                    SELECT m.id, m.sequence, m.message_id, m.group_id, m.deduplication_id, m.sent_at_ms,
                        m.receive_count, m.body
                    FROM messages m JOIN open_groups g ON g.group_id = m.group_id
                    WHERE m.queue = :queue
                    ORDER BY g.head, m.sequence
                    LIMIT :limit
                    """, arguments: ["queue": name, "now": nowMs, "limit": maxMessages])
            let messages = try rows.map { row -> ReceivedMessage in
                let handle = Self.makeReceiptHandle()
                let receiveCount = (row["receive_count"] as Int) + 1
                try db.execute(
                    sql: """
                        UPDATE messages SET visible_at_ms = ?, receive_count = ?, receipt_handle = ?
                        WHERE id = ?
                        """, arguments: [nowMs + timeout, receiveCount, handle, row["id"] as Int64])
                return ReceivedMessage(
                    messageID: row["message_id"], receiptHandle: handle, body: row["body"], groupID: row["group_id"],
                    deduplicationID: row["deduplication_id"], sequenceNumber: Self.formatSequence(row["sequence"]),
                    receiveCount: receiveCount, sentAt: EmbeddedQueueStore.date(milliseconds: row["sent_at_ms"]))
            }
            return messages
        }
        // Other waiters on this queue look again: with a zero visibility timeout the messages are still deliverable,
        // and otherwise they become deliverable again when the timeout ends, which a waiter must wait for.
        if !messages.isEmpty { store.doorbells.ring(name) }
        return messages
    }

    // MARK: Deleting and visibility

    /// Deletes a received message by the receipt handle of its latest receive.
    ///
    /// The handle stays valid after the visibility timeout passes, until the message is received again.
    ///
    /// - Parameter receiptHandle: From ``ReceivedMessage/receiptHandle``.
    /// - Throws: ``QueueError`` `.receiptHandleIsInvalid` when no message of this queue has that handle as its
    ///   latest (unknown, already deleted, or received again since); `.queueDoesNotExist`, `.storage`.
    public func delete(receiptHandle: String) async throws {
        record(.delete)
        let name = name
        let groupContinues = try await write("cannot delete a message from queue \(name)") { db -> Bool in
            _ = try Self.queueRow(db, name)
            guard
                let group = try String.fetchOne(
                    db, sql: "DELETE FROM messages WHERE queue = ? AND receipt_handle = ? RETURNING group_id",
                    arguments: [name, receiptHandle])
            else { throw Self.invalidHandle(receiptHandle, name) }
            // The group's next message may be deliverable now: only then is there anything to wake a poll for.
            return try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM messages WHERE queue = ? AND group_id = ?)",
                arguments: [name, group]) ?? false
        }
        if groupContinues { store.doorbells.ring(name) }
    }

    /// Changes the visibility timeout of a message in flight, counted from now (a heartbeat, or zero to give the
    /// message back at once).
    ///
    /// - Parameters:
    ///   - receiptHandle: The handle of the message's latest receive.
    ///   - timeout: 0–43,200 seconds from now.
    /// - Throws: ``QueueError`` `.invalidParameter` for an out-of-range timeout; `.receiptHandleIsInvalid` as for
    ///   ``delete(receiptHandle:)``; `.messageNotInflight` when the visibility timeout already passed;
    ///   `.queueDoesNotExist`, `.storage`.
    public func changeVisibility(receiptHandle: String, timeout: Duration) async throws {
        record(.changeVisibility)
        try SQSLimits.validateVisibilityTimeout(timeout, "visibility timeout")
        let name = name
        let now = store.now
        let sooner = try await write("cannot change a message's visibility in queue \(name)") { db -> Bool in
            _ = try Self.queueRow(db, name)
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT id, visible_at_ms FROM messages WHERE queue = ? AND receipt_handle = ?",
                    arguments: [name, receiptHandle])
            else { throw Self.invalidHandle(receiptHandle, name) }
            let nowMs = EmbeddedQueueStore.milliseconds(now())
            guard (row["visible_at_ms"] as Int64) > nowMs else {
                throw QueueError(
                    .messageNotInflight,
                    "the message of receipt handle \(receiptHandle) in queue \(name) is not in flight: "
                        + "its visibility timeout has passed")
            }
            let visibleAt = nowMs + timeout.wholeMilliseconds
            try db.execute(
                sql: "UPDATE messages SET visible_at_ms = ? WHERE id = ?", arguments: [visibleAt, row["id"] as Int64])
            // A longer timeout (a heartbeat) wakes nobody; a shorter one may end a poll's wait sooner.
            return visibleAt < row["visible_at_ms"] as Int64
        }
        if sooner { store.doorbells.ring(name) }
    }

    /// The number of visible and in-flight messages, as of the store's clock.
    ///
    /// Exact for the embedded queue. `visible` counts every message not in flight, including those waiting behind
    /// an in-flight message of their group (`ApproximateNumberOfMessages`); `inFlight` counts received messages
    /// whose visibility timeout has not passed (`ApproximateNumberOfMessagesNotVisible`).
    ///
    /// - Returns: The counts.
    /// - Throws: ``QueueError`` `.queueDoesNotExist`, `.storage`.
    public func approximateCounts() async throws -> QueueCounts {
        let name = name
        let now = store.now
        record(.other)
        return try await read("cannot count the messages of queue \(name)") { db in
            _ = try Self.queueRow(db, name)
            let nowMs = EmbeddedQueueStore.milliseconds(now())
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT coalesce(sum(visible_at_ms <= :now), 0) AS visible,
                        coalesce(sum(visible_at_ms > :now), 0) AS in_flight
                    FROM messages WHERE queue = :queue
                    """, arguments: ["queue": name, "now": nowMs])!
            return QueueCounts(visible: row["visible"], inFlight: row["in_flight"])
        }
    }

    // MARK: Helpers

    private func write<T: Sendable>(
        _ message: @autoclosure () -> String, _ body: @escaping @Sendable (Database) throws -> T
    ) async throws -> T {
        try store.checkOpen()
        return try await file.write(message(), body)
    }

    private func read<T: Sendable>(
        _ message: @autoclosure () -> String, _ body: @escaping @Sendable (Database) throws -> T
    ) async throws -> T {
        try store.checkOpen()
        return try await file.read(message(), body)
    }

    private static func queueRow(_ db: Database, _ name: String) throws -> QueueRow {
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT visibility_timeout_ms, maximum_message_size FROM queues WHERE name = ?",
                arguments: [name])
        else { throw QueueError(.queueDoesNotExist, "queue \(name) does not exist") }
        return QueueRow(
            visibilityTimeout: row["visibility_timeout_ms"], maximumMessageSize: row["maximum_message_size"])
    }

    private static func forgetExpiredDeduplicationIDs(_ db: Database, _ name: String, _ nowMs: Int64) throws {
        try db.execute(
            sql: "DELETE FROM deduplication WHERE queue = ? AND expires_at_ms <= ?", arguments: [name, nowMs])
    }

    /// Enqueues one message unless its deduplication ID is remembered; runs inside the caller's write transaction.
    private static func insert(
        _ db: Database, _ name: String, body: String, groupID: String, deduplicationID: String, _ nowMs: Int64
    ) throws -> SendResult {
        if let first = try Row.fetchOne(
            db,
            sql: """
                SELECT message_id, sequence FROM deduplication
                WHERE queue = ? AND deduplication_id = ? AND expires_at_ms > ?
                """, arguments: [name, deduplicationID, nowMs])
        {
            return SendResult(
                messageID: first["message_id"], sequenceNumber: formatSequence(first["sequence"]), deduplicated: true)
        }
        let sequence = try Int64.fetchOne(
            db, sql: "SELECT next_sequence FROM queues WHERE name = ?", arguments: [name])!
        try db.execute(sql: "UPDATE queues SET next_sequence = ? WHERE name = ?", arguments: [sequence + 1, name])
        let messageID = UUID().uuidString.lowercased()
        try db.execute(
            sql: """
                INSERT INTO messages (queue, sequence, message_id, group_id, deduplication_id, sent_at_ms, body)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [name, sequence, messageID, groupID, deduplicationID, nowMs, body])
        try db.execute(
            sql: """
                INSERT OR REPLACE INTO deduplication (queue, deduplication_id, message_id, sequence, expires_at_ms)
                VALUES (?, ?, ?, ?, ?)
                """,
            arguments: [
                name, deduplicationID, messageID, sequence, nowMs + SQSLimits.deduplicationInterval.wholeMilliseconds,
            ])
        return SendResult(messageID: messageID, sequenceNumber: formatSequence(sequence), deduplicated: false)
    }

    /// 20 digits, zero-padded: SQS FIFO sequence numbers are 20-digit decimal strings, and padding keeps string order
    /// equal to numeric order.
    static func formatSequence(_ sequence: Int64) -> String {
        let digits = String(sequence)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    private static func makeReceiptHandle() -> String {
        UUID().uuidString.lowercased() + "-" + UUID().uuidString.lowercased()
    }

    private static func invalidHandle(_ handle: String, _ name: String) -> QueueError {
        QueueError(
            .receiptHandleIsInvalid,
            "receipt handle \(handle) is not the latest receive of any message in queue \(name)")
    }
}
