@testable import Agent
import Domain
import Foundation
@testable import Transport
import Wire

/// The fuzz targets (issue 12). Each feeds one input to a parser of untrusted bytes through the same entry point the
/// product uses; a target fails (traps, so libFuzzer saves the input) only on a crash or a broken invariant, never on
/// a thrown error, which is the parser's correct answer to bad input.
enum FuzzTargets {
    nonisolated(unsafe) static var selected: @Sendable (UnsafeRawBufferPointer) -> Void = { _ in }

    static let all: [String: @Sendable (UnsafeRawBufferPointer) -> Void] = [
        "envelope": envelope, "events": events, "sqs": sqs, "docker": docker, "nvidia-smi": nvidiaSMI,
    ]

    /// A queue message as the agent and the backend read it: ``WireCoding/decodeRequest(_:)`` and
    /// ``WireCoding/decodeResponse(_:)`` (limits, then decoding, then whatever checks those entry points make).
    /// Invariant: a decoded envelope encodes again and decodes to an envelope (the backend re-encodes what it
    /// received into the log, with `try!`).
    static func envelope(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        if let request = try? WireCoding.decodeRequest(text) {
            guard let again = try? WireCoding.encoder().encode(request) else { fatalError("request does not re-encode") }
            guard (try? WireCoding.decodeRequest(String(decoding: again, as: UTF8.self))) != nil else {
                fatalError("re-encoded request does not decode: \(String(decoding: again, as: UTF8.self))")
            }
        }
        if let response = try? WireCoding.decodeResponse(text) {
            guard let again = try? WireCoding.encoder().encode(response) else { fatalError("response does not re-encode") }
            guard (try? WireCoding.decodeResponse(String(decoding: again, as: UTF8.self))) != nil else {
                fatalError("re-encoded response does not decode: \(String(decoding: again, as: UTF8.self))")
            }
        }
        _ = WireCoding.salvageRequestID(text)
    }

    /// An event as the log stores it, `TYPE SCHEMA\nPAYLOAD`, decoded by ``DomainEventCodec`` on the fast path and on
    /// the Foundation path. Invariant: when both decode, they agree (the fast path's documented contract).
    static func events(_ bytes: UnsafeRawBufferPointer) {
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return }
        let header = String(decoding: bytes[..<newline], as: UTF8.self).split(separator: " ")
        guard header.count == 2, let schema = Int(header[1]) else { return }
        let type = String(header[0])
        let payload = UnsafeRawBufferPointer(rebasing: bytes[(newline + 1)...])
        let fast = try? DomainEventCodec.decode(type: type, schema: schema, bytes: payload, position: 1)
        let foundation = try? DomainEventCodec.decodeWithFoundation(
            type: type, schema: schema, payload: Data(payload), position: 1)
        if let fast, let foundation, fast != foundation {
            fatalError("fast and Foundation decoders disagree:\n\(fast)\n\(foundation)")
        }
    }

    /// An SQS answer: the first byte picks the operation's response shape (or the error decoder, with the second byte
    /// giving the status, 400 + byte % 200), the rest is the body, decoded as ``SQSClient`` does.
    static func sqs(_ bytes: UnsafeRawBufferPointer) {
        guard let selector = bytes.first else { return }
        let body = Array(bytes.dropFirst())
        func decode<R: Decodable>(_ type: R.Type) -> R? {
            try? SQSResponseDecoder.decode(type, body: body, status: 200, operation: "Fuzz")
        }
        switch selector % 7 {
        case 0: _ = try? decode(ReceiveMessageResponse.self)?.received(queue: "fuzz")
        case 1: _ = decode(SendMessageResponse.self)
        case 2: _ = decode(SendMessageBatchResponse.self)
        case 3: _ = decode(DeleteMessageBatchResponse.self)
        case 4: _ = decode(GetQueueAttributesResponse.self)
        case 5: _ = decode(QueueURLResponse.self)
        default:
            let status = 400 + Int(body.first ?? 0) % 200
            _ = SQSErrorDecoder.decode(
                status: status, queryError: nil, contentType: "application/x-amz-json-1.0",
                body: Array(body.dropFirst()), operation: "Fuzz")
        }
    }

    /// A Docker engine answer: the first byte picks the shape (inspect, list, error message, pull stream), the rest is
    /// the body, parsed by ``DockerAnswers`` as ``DockerClient`` does.
    static func docker(_ bytes: UnsafeRawBufferPointer) {
        guard let selector = bytes.first else { return }
        let body = Data(bytes.dropFirst())
        switch selector % 4 {
        case 0: _ = try? DockerAnswers.decode(ContainerInspect.self, body)
        case 1: _ = try? DockerAnswers.decode([ContainerSummary].self, body)
        case 2: _ = DockerAnswers.message(body)
        default: _ = DockerAnswers.pullError(body)
        }
    }

    /// nvidia-smi's CSV, as ``GPUInventory`` parses it: the GPU query and the compute-apps query.
    static func nvidiaSMI(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        _ = try? GPUInventory.parseGPUs(text)
        _ = GPUInventory.parseComputeApps(text)
    }
}

/// libFuzzer's callback by its conventional name: `main` passes a closure to `LLVMFuzzerRunDriver`, but the runtime
/// archive's own `main` (never called: the package's `main` wins) still references this symbol.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTargets.selected(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
