/// The SQS limits and validation rules both ``MessageQueue`` implementations enforce.
///
/// Numbers come from the Amazon SQS API reference (`CreateQueue`, `SendMessage`, `SendMessageBatch`,
/// `ReceiveMessage`, `ChangeMessageVisibility`) and the Developer Guide's "Amazon SQS FIFO queue quotas".
enum SQSLimits {
    /// `MaxNumberOfMessages` of `ReceiveMessage`: 1–10.
    static let receiveMaxMessages = 1...10
    /// `WaitTimeSeconds` of `ReceiveMessage`: 0–20 seconds.
    static let maximumWaitTime = Duration.seconds(20)
    /// `VisibilityTimeout`: 0–43,200 seconds (12 hours).
    static let maximumVisibilityTimeout = Duration.seconds(43_200)
    /// `MaximumMessageSize` of `CreateQueue`: 1,024–1,048,576 bytes.
    static let messageSizeRange = 1_024...1_048_576
    /// Entries of one `SendMessageBatch`: at most 10.
    static let maximumBatchEntries = 10
    /// The sum of a batch's body sizes: at most 1,048,576 bytes, whatever the queue's `MaximumMessageSize`.
    static let maximumBatchPayload = 1_048_576
    /// The deduplication interval of a FIFO queue: 5 minutes.
    static let deduplicationInterval = Duration.seconds(300)
    /// Queue names: 1–80 characters.
    static let maximumQueueNameLength = 80
    /// `MessageGroupId` and `MessageDeduplicationId`: 1–128 characters.
    static let maximumIDLength = 128
    /// Batch entry `Id`: 1–80 characters.
    static let maximumBatchEntryIDLength = 80

    /// Checks a FIFO queue name: 1–80 characters of ASCII letters, digits, `-` and `_`, ending in `.fifo`.
    static func validateQueueName(_ name: String) throws(QueueError) {
        let scalars = name.unicodeScalars
        guard name.hasSuffix(".fifo"), (".fifo".count + 1...maximumQueueNameLength).contains(scalars.count),
            scalars.dropLast(5).allSatisfy({ isASCIIAlphanumeric($0) || $0 == "-" || $0 == "_" })
        else {
            throw QueueError(
                .invalidParameter,
                "queue name \"\(name)\" is invalid: use 1–80 characters of letters, digits, '-' and '_', "
                    + "ending in .fifo")
        }
    }

    /// Checks queue attributes against the `CreateQueue` ranges.
    static func validate(_ attributes: QueueAttributes) throws(QueueError) {
        try validateVisibilityTimeout(attributes.visibilityTimeout, "visibility timeout")
        guard messageSizeRange.contains(attributes.maximumMessageSize) else {
            throw QueueError(
                .invalidParameter,
                "maximum message size \(attributes.maximumMessageSize) bytes is outside 1,024–1,048,576 bytes")
        }
    }

    /// Checks a visibility timeout: 0–43,200 seconds.
    static func validateVisibilityTimeout(_ timeout: Duration, _ what: String) throws(QueueError) {
        guard timeout >= .zero, timeout <= maximumVisibilityTimeout else {
            throw QueueError(.invalidParameter, "\(what) \(timeout) is outside 0–43,200 seconds")
        }
    }

    /// Checks `ReceiveMessage` parameters.
    static func validateReceive(maxMessages: Int, waitTime: Duration, visibilityTimeout: Duration?) throws(QueueError) {
        guard receiveMaxMessages.contains(maxMessages) else {
            throw QueueError(.invalidParameter, "maxMessages \(maxMessages) is outside 1–10")
        }
        guard waitTime >= .zero, waitTime <= maximumWaitTime else {
            throw QueueError(.invalidParameter, "wait time \(waitTime) is outside 0–20 seconds")
        }
        if let visibilityTimeout { try validateVisibilityTimeout(visibilityTimeout, "visibility timeout") }
    }

    /// Checks a `MessageGroupId` or `MessageDeduplicationId`: 1–128 characters, each ASCII `!`…`~`.
    static func validateID(_ id: String, _ what: String) throws(QueueError) {
        let scalars = id.unicodeScalars
        guard (1...maximumIDLength).contains(scalars.count), scalars.allSatisfy({ (0x21...0x7E).contains($0.value) })
        else {
            throw QueueError(
                .invalidParameter,
                "\(what) \"\(id)\" is invalid: use 1–128 characters of ASCII letters, digits and punctuation")
        }
    }

    /// Checks a batch entry `Id`: 1–80 characters of ASCII letters, digits, `-` and `_`.
    static func validateBatchEntryID(_ id: String) throws(QueueError) {
        let scalars = id.unicodeScalars
        guard (1...maximumBatchEntryIDLength).contains(scalars.count),
            scalars.allSatisfy({ isASCIIAlphanumeric($0) || $0 == "-" || $0 == "_" })
        else {
            throw QueueError(
                .invalidBatchEntryId,
                "batch entry ID \"\(id)\" is invalid: use 1–80 characters of letters, digits, '-' and '_'")
        }
    }

    /// Checks a message body's characters: not empty, and only the characters SQS allows.
    ///
    /// SQS allows `#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF` (`SendMessage`,
    /// `MessageBody`); a Swift `String` cannot hold lone surrogates, so the `#xD800`–`#xDFFF` gap needs no check.
    static func validateBodyCharacters(_ body: String) throws(QueueError) {
        if body.isEmpty { throw QueueError(.invalidParameter, "the message body is empty") }
        if let bad = body.unicodeScalars.first(where: { !isAllowedInBody($0) }) {
            let hex = String(bad.value, radix: 16, uppercase: true)
            throw QueueError(.invalidParameter, "the message body holds U+\(hex), a character SQS does not allow")
        }
    }

    /// Checks a message body's size in UTF-8 bytes against a queue's maximum message size.
    static func validateBodySize(_ body: String, maximumSize: Int, queue: String) throws(QueueError) {
        let size = body.utf8.count
        if size > maximumSize {
            throw QueueError(
                .messageTooLarge,
                "the message body is \(size) bytes, over the limit of \(maximumSize) bytes of queue \(queue)")
        }
    }

    static func isAllowedInBody(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x9, 0xA, 0xD, 0x20...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF: true
        default: false
        }
    }

    private static func isASCIIAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9": true
        default: false
        }
    }
}
