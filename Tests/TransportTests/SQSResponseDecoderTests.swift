import Foundation
import TestSupport
import Testing
@testable import Transport

/// SQS answers: limits before decoding, unknown fields ignored (docs/input-limits.md), and the `sqs` fuzz target's
/// committed inputs (tools/fuzz).
@Suite struct SQSResponseDecoderTests {
    @Test func unknownFieldsAreIgnored() throws {
        let body = #"{"QueueUrl":"http://127.0.0.1:1/q.fifo","AddedIn2030":{"x":[1,2,3]}}"#
        let decoded = try SQSResponseDecoder.decode(QueueURLResponse.self, body: Array(body.utf8), status: 200, operation: "GetQueueUrl")
        #expect(decoded.QueueUrl == "http://127.0.0.1:1/q.fifo")
    }

    @Test func aBodyNestedTooDeepIsRefusedBeforeDecoding() {
        let body = Array((#"{"Messages":"# + String(repeating: "[", count: 100_000)).utf8)
        let error = #expect(throws: QueueError.self) {
            try SQSResponseDecoder.decode(ReceiveMessageResponse.self, body: body, status: 200, operation: "ReceiveMessage")
        }
        #expect(error?.code == .unexpectedResponse)
        #expect(error?.message == "SQS ReceiveMessage answered HTTP 200 with JSON nested deeper than the depth limit of 16 (at byte 27)")
    }

    @Test func anErrorBodyNestedTooDeepReadsAsNotJSON() {
        let body = Array((#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","x":"# + String(repeating: "[", count: 50)).utf8)
        let error = SQSErrorDecoder.decode(status: 400, queryError: nil, contentType: "application/x-amz-json-1.0", body: body, operation: "SendMessage")
        #expect(error.code == .unexpectedResponse)
        #expect(error.message.contains("a body that is not JSON"))
    }

    @Test func aMessageWithoutGroupIsRefused() throws {
        let body = #"{"Messages":[{"MessageId":"m","ReceiptHandle":"r","Body":"b","Attributes":{}}]}"#
        let response = try SQSResponseDecoder.decode(ReceiveMessageResponse.self, body: Array(body.utf8), status: 200, operation: "ReceiveMessage")
        let error = #expect(throws: QueueError.self) { try response.received(queue: "q.fifo") }
        #expect(error?.message.contains("without MessageGroupId or SequenceNumber") == true)
    }

    /// Each input's first byte picks the shape, as in the fuzz target.
    @Test func everyCommittedFuzzInputIsAnsweredWithoutACrash() throws {
        let seeds = FuzzInputs.seeds("sqs")
        #expect(seeds.count >= 7)
        for input in seeds + FuzzInputs.crashes("sqs") {
            let selector = input.bytes.first ?? 0
            let body = Array(input.bytes.dropFirst())
            func decodes<R: Decodable>(_ type: R.Type) -> Bool {
                (try? SQSResponseDecoder.decode(type, body: body, status: 200, operation: "Fuzz")) != nil
            }
            let isSeed = seeds.contains { $0.name == input.name }
            switch selector % 7 {
            case 0:
                let messages = try? SQSResponseDecoder.decode(ReceiveMessageResponse.self, body: body, status: 200, operation: "Fuzz")
                    .received(queue: "fuzz")
                #expect(!isSeed || messages != nil, "\(input.name)")
            case 1: #expect(!isSeed || decodes(SendMessageResponse.self), "\(input.name)")
            case 2: #expect(!isSeed || decodes(SendMessageBatchResponse.self), "\(input.name)")
            case 3: #expect(!isSeed || decodes(DeleteMessageBatchResponse.self), "\(input.name)")
            case 4: #expect(!isSeed || decodes(GetQueueAttributesResponse.self), "\(input.name)")
            case 5: #expect(!isSeed || decodes(QueueURLResponse.self), "\(input.name)")
            default:
                let error = SQSErrorDecoder.decode(
                    status: 400 + Int(body.first ?? 0) % 200, queryError: nil, contentType: nil, body: Array(body.dropFirst()),
                    operation: "Fuzz")
                #expect(!isSeed || error.code != .unexpectedResponse, "\(input.name)")
            }
        }
    }
}
