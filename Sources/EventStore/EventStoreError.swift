/// An error from the event log.
///
/// `description` reads `code: message (underlying)`, one line, fit for an operator.
public struct EventStoreError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a closed set of codes that callers can match.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String {
            case wrongExpectedVersion, unknownEventType, corruptPayload, storage, notAnEventLog, chainBroken
            case invalidStream
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// The stream's current version is not the one the append expected (optimistic concurrency conflict).
        public static var wrongExpectedVersion: Self { .init(.wrongExpectedVersion) }
        /// A stored event's `(type, schema)` is not known to this build.
        public static var unknownEventType: Self { .init(.unknownEventType) }
        /// A stored payload could not be decoded.
        public static var corruptPayload: Self { .init(.corruptPayload) }
        /// SQLite failed: disk full, I/O error, locked past the busy timeout, read-only file.
        public static var storage: Self { .init(.storage) }
        /// The file is not SQLite, or is an SQLite database of another application.
        public static var notAnEventLog: Self { .init(.notAnEventLog) }
        /// The hash chain does not verify at some position.
        public static var chainBroken: Self { .init(.chainBroken) }
        /// A stream name is empty or too long.
        public static var invalidStream: Self { .init(.invalidStream) }
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
