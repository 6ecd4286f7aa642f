import Domain
import EventStore
import Foundation
import Logging
import Projections
import Transport
import Wire

/// One channel seen from the backend: at most one outstanding request, every request and response recorded.
actor ChannelClient {
    let channel: ChannelID
    let requests: any MessageQueue
    let responses: any MessageQueue
    let log: TouchstoneLog
    let configuration: BackendConfiguration
    let logger: Logger
    private var epoch: Int64
    private var sequence: Int64

    init(
        channel: ChannelID, requests: any MessageQueue, responses: any MessageQueue, log: TouchstoneLog,
        state: ChannelRow?, configuration: BackendConfiguration, logger: Logger
    ) {
        self.channel = channel
        self.requests = requests
        self.responses = responses
        self.log = log
        self.configuration = configuration
        self.logger = logger
        self.epoch = state?.epoch ?? 0
        self.sequence = state?.lastSequence ?? 0
    }

    /// Sends one command and waits for its response. Actor isolation makes calls on one channel strictly serial.
    ///
    /// - Parameters:
    ///   - command: The command.
    ///   - taskID: The task it is about, for the log.
    ///   - requestID: The request ID to use (a resend reuses the original ID with a new deduplication ID).
    /// - Returns: The matching response.
    /// - Throws: ``BackendError`` `.timeout` when no matching response arrives before the deadline; a queue or log
    ///   error when those fail.
    func call(
        _ command: Command, taskID: TaskID? = nil, requestID: RequestID = .make(), timeout: Duration? = nil
    ) async throws -> ResponseEnvelope {
        sequence += 1
        let sentAt = Date()
        let timeout = timeout ?? configuration.requestTimeout
        let expiresAt = sentAt.addingTimeInterval(
            Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18)
        let envelope = RequestEnvelope(
            requestID: requestID, server: channel.server, channel: channel.index, epoch: epoch, sequence: sequence,
            sentAt: sentAt, expiresAt: expiresAt, command: command)
        // A fresh deduplication ID per send: SQS remembers IDs for 5 minutes even after delete, so a resend of the
        // same request ID must not reuse one.
        let dedup = "\(requestID)-\(sequence)-\(UInt32.random(in: 0...UInt32.max))"
        let sent = try await recordingFailure("send") { try await self.requests.send(
            WireCoding.encode(envelope), groupID: "channel-\(channel.index)", deduplicationID: dedup) }
        try await log.append(
            .requestSent(
                RequestSent(
                    channel: channel, requestID: requestID, epoch: epoch, sequence: sequence, command: command.name,
                    taskID: taskID, expiresAt: expiresAt, messageID: sent.messageID)),
            metadata: EventMetadata(actor: "backend", correlationID: requestID.rawValue))
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            try Task.checkCancellation()
            let remaining = deadline - ContinuousClock.now
            let wait = min(remaining, .seconds(20))
            let messages = try await recordingFailure("receive") {
                try await self.responses.receive(maxMessages: 10, waitTime: wait, visibilityTimeout: .seconds(30))
            }
            var matched: ResponseEnvelope?
            for message in messages {
                if let response = try await accept(message, expecting: requestID) { matched = response }
            }
            if let matched { return matched }
        }
        throw BackendError(.timeout, "no response to \(command.name) \(requestID) on channel \(channel) within \(timeout)")
    }

    /// Records and deletes one response message; returns it when it is the expected one.
    private func accept(_ message: ReceivedMessage, expecting requestID: RequestID) async throws -> ResponseEnvelope? {
        let meta = EventMetadata(actor: "agent:\(channel.server)", correlationID: requestID.rawValue)
        let prefix = String(decoding: message.body.utf8.prefix(200), as: UTF8.self)
        do {
            let response = try WireCoding.decodeResponse(message.body)
            if response.requestID == requestID && response.epoch == epoch {
                try await log.append(
                    .responseReceived(
                        ResponseReceived(
                            channel: channel, requestID: requestID, epoch: epoch, status: response.body.status,
                            message: Self.errorMessage(response.body), agentTime: response.agentTime,
                            messageID: message.messageID)),
                    metadata: meta)
                try await responses.delete(receiptHandle: message.receiptHandle)
                return response
            }
            let reason = response.epoch < epoch ? "staleEpoch" : "unexpectedRequestID"
            try await reject(message, reason: reason, requestID: response.requestID, prefix: prefix, meta: meta)
        } catch let error as WireError {
            logger.warning("malformed response", metadata: ["channel": "\(channel)", "error": "\(error)"])
            try await reject(
                message, reason: "malformed", requestID: WireCoding.salvageRequestID(message.body), prefix: prefix,
                meta: meta)
        }
        return nil
    }

    private func reject(
        _ message: ReceivedMessage, reason: String, requestID: RequestID?, prefix: String, meta: EventMetadata
    ) async throws {
        try await log.append(
            .responseRejected(
                ResponseRejected(
                    channel: channel, messageID: message.messageID, reason: reason, requestID: requestID,
                    bodyPrefix: prefix)),
            metadata: meta)
        try await responses.delete(receiptHandle: message.receiptHandle)
    }

    /// Runs a queue operation; a ``QueueError`` is recorded as `channel.transport-failed` (best effort) and rethrown.
    private func recordingFailure<T: Sendable>(_ operation: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as QueueError {
            logger.warning(
                "queue operation failed",
                metadata: ["channel": "\(channel)", "operation": "\(operation)", "error": "\(error)"])
            try? await log.append(
                .transportFailed(
                    TransportFailed(channel: channel, operation: operation, code: "\(error.code)", message: error.message)),
                metadata: EventMetadata(actor: "backend"))
            throw error
        }
    }

    static func errorMessage(_ body: ResponseBody) -> String? {
        if case .error(let error) = body { return error.message }
        return nil
    }
}

/// An error of the backend's own.
public struct BackendError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String { case timeout, unknownServer, unknownTask, invalidArgument }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// No matching response before the request's deadline.
        public static var timeout: Self { .init(.timeout) }
        /// The server is not attached.
        public static var unknownServer: Self { .init(.unknownServer) }
        /// No task has that ID.
        public static var unknownTask: Self { .init(.unknownTask) }
        /// An operator argument is out of range.
        public static var invalidArgument: Self { .init(.invalidArgument) }
        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
