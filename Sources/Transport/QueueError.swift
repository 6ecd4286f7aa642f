/// An error from a ``MessageQueue``. Codes follow the SQS API error names where one exists.
public struct QueueError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a closed set of SQS-like error names; compare with `==` (`error.code == .storage`).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String {
            case messageTooLarge, invalidParameter, queueDoesNotExist, receiptHandleIsInvalid
            case tooManyEntriesInBatch, batchEntryIdsNotDistinct, emptyBatch, storage, notAQueueDatabase
            case batchRequestTooLong, invalidBatchEntryId, messageNotInflight, queueNameExists
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// The body exceeds the queue's maximum message size (UTF-8 bytes).
        public static var messageTooLarge: Self { .init(.messageTooLarge) }
        /// A parameter is out of range or holds characters SQS does not allow.
        public static var invalidParameter: Self { .init(.invalidParameter) }
        /// The named queue does not exist.
        public static var queueDoesNotExist: Self { .init(.queueDoesNotExist) }
        /// The receipt handle is unknown or stale.
        public static var receiptHandleIsInvalid: Self { .init(.receiptHandleIsInvalid) }
        /// More than 10 entries in a batch.
        public static var tooManyEntriesInBatch: Self { .init(.tooManyEntriesInBatch) }
        /// Two entries of a batch share an ID.
        public static var batchEntryIdsNotDistinct: Self { .init(.batchEntryIdsNotDistinct) }
        /// A batch with no entries.
        public static var emptyBatch: Self { .init(.emptyBatch) }
        /// The backing store failed (disk full, I/O error, locked past the busy timeout).
        public static var storage: Self { .init(.storage) }
        /// The file exists but is not a Touchstone queue database.
        public static var notAQueueDatabase: Self { .init(.notAQueueDatabase) }
        /// The bodies of a batch add up to more than 1 MiB (1,048,576 bytes), SQS's limit for a whole batch
        /// (`BatchRequestTooLong`).
        public static var batchRequestTooLong: Self { .init(.batchRequestTooLong) }
        /// A batch entry ID is empty, longer than 80 characters, or holds characters other than ASCII letters,
        /// digits, `-` and `_` (`InvalidBatchEntryId`).
        public static var invalidBatchEntryId: Self { .init(.invalidBatchEntryId) }
        /// The message of a receipt handle is not in flight: its visibility timeout has passed
        /// (`MessageNotInflight`, from `ChangeMessageVisibility`).
        public static var messageNotInflight: Self { .init(.messageNotInflight) }
        /// A queue of that name exists with other attributes (`QueueNameExists`, from `CreateQueue`).
        public static var queueNameExists: Self { .init(.queueNameExists) }
        /// The code's name, for example `receiptHandleIsInvalid`.
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// A one-line explanation for people, naming the queue, file or parameter concerned.
    public var message: String
    /// The error of a dependency that caused this one (a GRDB `DatabaseError` for `.storage`), if any.
    public var underlying: (any Error)?

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: What went wrong.
    ///   - message: A one-line explanation for people.
    ///   - underlying: The dependency's error that caused this one, if any.
    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    /// `code: message`, followed by the underlying error in parentheses when there is one.
    public var description: String {
        if let underlying { return "\(code): \(message) (\(underlying))" }
        return "\(code): \(message)"
    }
}
