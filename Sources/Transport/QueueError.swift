/// An error from a ``MessageQueue``. Codes follow the SQS API error names where one exists.
public struct QueueError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a closed set of SQS-like error names; compare with `==` (`error.code == .storage`).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String {
            case messageTooLarge, invalidParameter, queueDoesNotExist, receiptHandleIsInvalid
            case tooManyEntriesInBatch, batchEntryIdsNotDistinct, emptyBatch, storage, notAQueueDatabase
            case batchRequestTooLong, invalidBatchEntryId, messageNotInflight, queueNameExists
            case accessDenied, invalidSignature, invalidCredentials, missingCredentials, throttled
            case serviceUnavailable, connectionFailed, unexpectedResponse, serviceError
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
        /// The caller's credentials are valid but not allowed to do this (`AccessDenied`,
        /// `AccessDeniedException`, `KmsAccessDenied`). Never retried.
        public static var accessDenied: Self { .init(.accessDenied) }
        /// The request's SigV4 signature does not match the one the service computed (`SignatureDoesNotMatch`,
        /// `IncompleteSignature`, `InvalidSignatureException`): a wrong secret key or clock. Never retried.
        public static var invalidSignature: Self { .init(.invalidSignature) }
        /// The service does not know the access key or session token, or the token expired
        /// (`InvalidClientTokenId`, `UnrecognizedClientException`, `ExpiredToken`, `InvalidToken`). Never retried.
        public static var invalidCredentials: Self { .init(.invalidCredentials) }
        /// No credentials were found in the environment or the shared credentials file, or the file is malformed.
        public static var missingCredentials: Self { .init(.missingCredentials) }
        /// The service throttled the request (`ThrottlingException`, `RequestThrottled`, HTTP 429), still so
        /// after the client's bounded retries.
        public static var throttled: Self { .init(.throttled) }
        /// The service failed (HTTP 5xx, `ServiceUnavailable`, `InternalError`), still so after the client's bounded
        /// retries; also a 5xx whose body is HTML or empty.
        public static var serviceUnavailable: Self { .init(.serviceUnavailable) }
        /// The connection failed, was closed or timed out, still so after the client's bounded retries.
        public static var connectionFailed: Self { .init(.connectionFailed) }
        /// A response that is not what the SQS JSON protocol gives: not JSON, or missing a required field.
        public static var unexpectedResponse: Self { .init(.unexpectedResponse) }
        /// Any other error the service named; the message holds its `__type` and text. Never retried.
        public static var serviceError: Self { .init(.serviceError) }
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
