/// A protocol-level error, sent back to the backend in an error response.
public struct WireError: Error, Sendable, Equatable, Codable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// The request could not be read: malformed JSON, missing fields, unknown command, other version.
        public static let badRequest = Code(rawValue: "badRequest")
        /// The response could not be read.
        public static let badResponse = Code(rawValue: "badResponse")
        /// The request arrived after its `expiresAt`; it was not executed.
        public static let expired = Code(rawValue: "expired")
        /// The request names another server.
        public static let wrongServer = Code(rawValue: "wrongServer")
        /// The command was understood but failed on the agent (e.g. cannot write the working files).
        public static let executionFailed = Code(rawValue: "executionFailed")
        /// The request carries an epoch older than the one the channel was resynchronised to; it was not executed.
        public static let staleEpoch = Code(rawValue: "staleEpoch")
        /// The task named is not known to the agent.
        public static let unknownTask = Code(rawValue: "unknownTask")
        /// The request was not signed by a key the agent trusts (unsigned, or badly signed); it was not read.
        public static let unauthenticated = Code(rawValue: "unauthenticated")
        /// The same signed request arrived before, within the replay window; it was not executed again.
        public static let replayed = Code(rawValue: "replayed")
        public var description: String { rawValue }
    }

    public var code: Code
    public var message: String
    /// With `staleEpoch`: the epoch the agent's channel is at, so that the backend can resynchronise above it.
    public var epoch: Int64?

    public init(_ code: Code, _ message: String, epoch: Int64? = nil) {
        self.code = code
        self.message = message
        self.epoch = epoch
    }

    public var description: String { "\(code): \(message)" }
}
