import Domain
import Foundation

/// The protocol version both sides speak. A message of another version gets a `badRequest` error response.
public let wireProtocolVersion = 1

/// A request from the backend to one agent, as one queue message (JSON, UTF-8).
///
/// Shape: `{"v":1,"requestID":"<uuidv7>","server":"gpu-07","channel":1,"epoch":0,"sequence":12,
/// "sentAt":<unix ms>,"expiresAt":<unix ms>,"command":{"kind":"startTask","startTask":{…}},"signature":null}`.
/// The signature (Ed25519 by the backend's key) comes with the signing issue; the field is kept from the start.
public struct RequestEnvelope: Codable, Sendable, Equatable {
    public var v: Int
    public var requestID: RequestID
    public var server: ServerID
    public var channel: Int
    /// The channel's epoch when sent; a request of an older epoch is stale.
    public var epoch: Int64
    /// Per-channel sequence number, 1, 2, 3, …
    public var sequence: Int64
    public var sentAt: Date
    /// The delivery deadline: after this instant the agent answers `expired` and does not execute the command.
    public var expiresAt: Date
    /// The execution deadline, in seconds after delivery: how long the command may take once the agent picked it up
    /// (a stop's grace period, a start's launch). The backend waits for the response until `expiresAt` plus this;
    /// `nil` in messages of older senders, read as 30 seconds.
    public var executionSeconds: Int?
    public var command: Command
    /// The agent instance the request is addressed to (``ResponseEnvelope/instance`` of the agent the backend knows
    /// for this server); `nil` when the backend knows none yet, or its known instance stopped answering: then any
    /// agent of the server may answer. An agent answers a request addressed to itself or to an earlier instance in its
    /// own workspace; any other agent is fenced (``WireError/Code/fenced``).
    public var instance: String?
    /// Base64 Ed25519 signature over the canonical request; `nil` until signing lands.
    public var signature: String?

    public init(
        requestID: RequestID, server: ServerID, channel: Int, epoch: Int64, sequence: Int64, sentAt: Date,
        expiresAt: Date, executionSeconds: Int? = nil, command: Command, instance: String? = nil,
        signature: String? = nil
    ) {
        self.v = wireProtocolVersion
        self.requestID = requestID
        self.server = server
        self.channel = channel
        self.epoch = epoch
        self.sequence = sequence
        self.sentAt = sentAt
        self.expiresAt = expiresAt
        self.executionSeconds = executionSeconds
        self.command = command
        self.instance = instance
        self.signature = signature
    }
}

/// An agent's answer to one request, carrying the same request ID, channel and epoch.
///
/// `requestID` is `nil` only when the agent could not read one from a malformed request.
public struct ResponseEnvelope: Codable, Sendable, Equatable {
    public var v: Int
    public var requestID: RequestID?
    public var server: ServerID
    public var channel: Int
    public var epoch: Int64
    public var sequence: Int64
    /// The agent's wall clock when it answered, for clock-skew measurement.
    public var agentTime: Date
    public var body: ResponseBody
    /// The answering agent process's instance ID (a UUIDv7, so later instances sort later), new at every start of
    /// `touchstone-agent`; `nil` from agents older than instance IDs.
    public var instance: String?

    public init(
        requestID: RequestID?, server: ServerID, channel: Int, epoch: Int64, sequence: Int64, agentTime: Date,
        body: ResponseBody, instance: String? = nil
    ) {
        self.v = wireProtocolVersion
        self.requestID = requestID
        self.server = server
        self.channel = channel
        self.epoch = epoch
        self.sequence = sequence
        self.agentTime = agentTime
        self.body = body
        self.instance = instance
    }
}

/// JSON coding of envelopes: dates as Unix milliseconds, data as base64, sorted keys.
public enum WireCoding {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .millisecondsSince1970
        encoder.dataEncodingStrategy = .base64
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        decoder.dataDecodingStrategy = .base64
        return decoder
    }

    /// Encodes a message to the UTF-8 JSON text that goes on a queue.
    public static func encode(_ value: some Encodable) -> String {
        // Our envelopes hold only strings, numbers, dates and data: encoding cannot fail.
        String(decoding: try! encoder().encode(value), as: UTF8.self)
    }

    /// Decodes a request.
    ///
    /// - Throws: ``WireError`` `.badRequest` with a one-line reason for malformed JSON, a missing field, an unknown
    ///   command or another protocol version.
    public static func decodeRequest(_ text: String) throws(WireError) -> RequestEnvelope {
        let envelope: RequestEnvelope
        do {
            envelope = try decoder().decode(RequestEnvelope.self, from: Data(text.utf8))
        } catch {
            throw WireError(.badRequest, "malformed request: \(describe(error))")
        }
        guard envelope.v == wireProtocolVersion else {
            throw WireError(.badRequest, "protocol version \(envelope.v) is not supported (this side speaks \(wireProtocolVersion))")
        }
        return envelope
    }

    /// Decodes a response.
    ///
    /// - Throws: ``WireError`` `.badResponse` for malformed JSON, a missing field or another protocol version.
    public static func decodeResponse(_ text: String) throws(WireError) -> ResponseEnvelope {
        let envelope: ResponseEnvelope
        do {
            envelope = try decoder().decode(ResponseEnvelope.self, from: Data(text.utf8))
        } catch {
            throw WireError(.badResponse, "malformed response: \(describe(error))")
        }
        guard envelope.v == wireProtocolVersion else {
            throw WireError(.badResponse, "protocol version \(envelope.v) is not supported")
        }
        return envelope
    }

    /// Best effort: the request ID of a message that did not decode, so its error response can still name it.
    public static func salvageRequestID(_ text: String) -> RequestID? {
        struct Partial: Decodable { var requestID: RequestID? }
        return (try? JSONDecoder().decode(Partial.self, from: Data(text.utf8)))?.requestID
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing field \(path(context.codingPath + [key]))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "wrong type at \(path(context.codingPath)): \(context.debugDescription)"
        case DecodingError.dataCorrupted(let context):
            return context.codingPath.isEmpty
                ? "not valid JSON" : "bad value at \(path(context.codingPath)): \(context.debugDescription)"
        default:
            return "\(error)"
        }
    }

    static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }
}
