import Domain
import Foundation
import TestSupport
import Testing
import Wire

/// The envelope's input rules (docs/input-limits.md): limits before decoding; in version 1, unknown fields are
/// ignored and never acted on, while an unknown command or response kind and any other version are refused.
extension EnvelopeTests {
    /// Adds `"zz…":…` members at the top level and inside the command's body.
    func withUnknownFields(_ text: String) -> String {
        text.replacingOccurrences(of: #""command":{"#, with: #""zzFuture":{"nested":[1,2]},"command":{"zzNew":true,"#)
            .replacingOccurrences(of: #""spec":{"#, with: #""spec":{"zzRuntime":"gvisor","#)
    }

    @Test func version1RequestsIgnoreUnknownFields() throws {
        let plain = WireCoding.encode(request(.startTask(start)))
        let extended = withUnknownFields(plain)
        #expect(extended.contains("zzFuture") && extended.contains("zzNew") && extended.contains("zzRuntime"))
        #expect(try WireCoding.decodeRequest(extended) == request(.startTask(start)))
    }

    @Test func version1ResponsesIgnoreUnknownFields() throws {
        let response = ResponseEnvelope(
            requestID: Fixtures.request(1), server: Fixtures.gpu1, channel: 0, epoch: 0, sequence: 1,
            agentTime: Fixtures.epoch0, body: .error(WireError(.expired, "late")))
        let extended = WireCoding.encode(response).replacingOccurrences(of: #"{"agentTime""#, with: #"{"zz":[{}],"agentTime""#)
        #expect(extended.contains(#""zz":[{}]"#))
        #expect(try WireCoding.decodeResponse(extended) == response)
    }

    @Test func unknownKindsAndOtherVersionsAreRefused() {
        let unknownResponse = #expect(throws: WireError.self) {
            try WireCoding.decodeResponse(
                #"{"v":1,"requestID":null,"server":"gpu-1","channel":0,"epoch":0,"sequence":1,"agentTime":0,"body":{"kind":"shell"}}"#)
        }
        #expect(unknownResponse?.code == .badResponse)
        let future = WireCoding.encode(request(.hello)).replacingOccurrences(of: #""v":1"#, with: #""v":2"#)
        #expect(throws: WireError.self) { try WireCoding.decodeRequest(future) }
    }

    @Test func aRequestOverTheSizeLimitIsRefusedBeforeDecoding() {
        let padding = String(repeating: "x", count: 1 << 20)
        let text = WireCoding.encode(request(.hello)).replacingOccurrences(of: #""command":"#, with: #""pad":"\#(padding)","command":"#)
        let error = #expect(throws: WireError.self) { try WireCoding.decodeRequest(text) }
        #expect(error?.code == .badRequest)
        #expect(error?.message == "request refused before decoding: JSON of \(text.utf8.count) bytes is over the size limit of 1048576 bytes")
        #expect(WireCoding.salvageRequestID(text) == nil)
    }

    @Test func aResponseNestedTooDeepIsRefusedBeforeDecoding() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        let error = #expect(throws: WireError.self) { try WireCoding.decodeResponse(#"{"zz":\#(deep)}"#) }
        #expect(error?.code == .badResponse)
        #expect(error?.message == "response refused before decoding: JSON nested deeper than the depth limit of 32 (at byte 37)")
    }

    @Test func theDeepestEnvelopeWeSendFitsTheLimits() throws {
        var spec = Fixtures.spec(["python3", "t.py"])
        spec.files = [WorkingFile(path: "a/b/c.txt", contents: Data("x".utf8))]
        spec.inputs = [InputFile(path: "d", size: 1, sha256: String(repeating: "0", count: 64))]
        spec.constraints = ["gpu": "a100"]
        spec.environment = ["A": "1"]
        let batch = request(
            .startTasks(
                StartTasks(items: [
                    .init(
                        requestID: Fixtures.request(2),
                        start: StartTask(taskID: Fixtures.taskA, attempt: 1, spec: spec, backend: "b", gpuIndices: [0]))
                ])))
        try WireCoding.checkLimits(WireCoding.encode(batch), code: .badRequest)
        #expect(try WireCoding.decodeRequest(WireCoding.encode(batch)) == batch)
    }
}
