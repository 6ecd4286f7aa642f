import Foundation
import InputLimits

/// Decodes the JSON body of a successful SQS answer (AWS JSON 1.0 protocol), after checking it against
/// ``limits`` (issue 12: untrusted JSON is limited before it is decoded).
///
/// Unknown fields are ignored: AWS adds fields to its answers without a new protocol version
/// (docs/input-limits.md).
enum SQSResponseDecoder {
    /// 64 MiB (10 messages of 1 MiB, each byte possibly escaped as `\uXXXX`: the bound ``SQSClient`` reads up to) and
    /// depth 16 (a `ReceiveMessage` answer nests 5 deep: `{"Messages":[{"MessageAttributes":{"k":{…}}}]}`).
    static let limits = JSONLimits(maxBytes: 64 << 20, maxDepth: 16)

    /// Decodes a 2xx body; an empty body decodes as `{}`.
    ///
    /// - Parameters:
    ///   - type: The operation's response shape.
    ///   - body: The body's bytes.
    ///   - status: The HTTP status, for the message.
    ///   - operation: The SQS action, for the message.
    /// - Throws: ``QueueError`` `.unexpectedResponse` for a body over ``limits`` or one that does not decode.
    static func decode<Response: Decodable>(_ type: Response.Type, body: [UInt8], status: Int, operation: String)
        throws(QueueError) -> Response
    {
        do {
            try limits.check(body)
        } catch {
            throw QueueError(.unexpectedResponse, "SQS \(operation) answered HTTP \(status) with \(error)")
        }
        do {
            return try JSONDecoder().decode(Response.self, from: body.isEmpty ? Data("{}".utf8) : Data(body))
        } catch {
            throw QueueError(
                .unexpectedResponse, "SQS \(operation) answered HTTP \(status) with a body that does not decode",
                underlying: error)
        }
    }
}

extension ReceiveMessageResponse {
    /// The messages of a `ReceiveMessage` answer.
    ///
    /// - Parameter queue: The queue's name, for the message.
    /// - Throws: ``QueueError`` `.unexpectedResponse` for a message without `MessageGroupId` or `SequenceNumber`
    ///   (the queue is not FIFO).
    func received(queue: String) throws(QueueError) -> [ReceivedMessage] {
        var result: [ReceivedMessage] = []
        for message in Messages ?? [] {
            let attributes = message.Attributes ?? [:]
            guard let groupID = attributes["MessageGroupId"], let sequence = attributes["SequenceNumber"] else {
                throw QueueError(
                    .unexpectedResponse,
                    "SQS ReceiveMessage on \(queue) returned message \(message.MessageId) without MessageGroupId or "
                        + "SequenceNumber; is the queue FIFO?")
            }
            let sentMs = attributes["SentTimestamp"].flatMap(Double.init) ?? 0
            result.append(
                ReceivedMessage(
                    messageID: message.MessageId, receiptHandle: message.ReceiptHandle, body: message.Body ?? "",
                    groupID: groupID, deduplicationID: attributes["MessageDeduplicationId"] ?? "",
                    sequenceNumber: sequence,
                    receiveCount: attributes["ApproximateReceiveCount"].flatMap(Int.init) ?? 1,
                    sentAt: Date(timeIntervalSince1970: sentMs / 1_000)))
        }
        return result
    }
}
