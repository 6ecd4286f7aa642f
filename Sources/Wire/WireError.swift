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
        /// The request is addressed to another agent instance of this server, which is not an earlier life of the
        /// answering agent: two agents serve one server. The answering agent releases the request for the other one,
        /// sends this notice (never an answer to the command) and exits.
        public static let fenced = Code(rawValue: "fenced")
        /// A start refused by the agent's own capacity guard: it would run more attempts than the last known
        /// `max_tasks`, or use a GPU an attempt holds. Nothing was started; the backend's view of the server is wrong.
        public static let capacityExceeded = Code(rawValue: "capacityExceeded")
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
