/// An error from a ``MessageQueue``. Codes follow the SQS API error names where one exists.
public struct QueueError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String {
            case messageTooLarge, invalidParameter, queueDoesNotExist, receiptHandleIsInvalid
            case tooManyEntriesInBatch, batchEntryIdsNotDistinct, emptyBatch, storage, notAQueueDatabase
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
        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    public var underlying: (any Error)?

    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        if let underlying { return "\(code): \(message) (\(underlying))" }
        return "\(code): \(message)"
    }
}
