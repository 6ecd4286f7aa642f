@testable import Agent
import Foundation
import TestSupport
import Testing

/// Docker engine answers: limits before decoding, unknown fields ignored (docs/input-limits.md), and the `docker` fuzz
/// target's committed inputs (tools/fuzz).
@Suite struct DockerAnswersTests {
    @Test func unknownFieldsAreIgnored() throws {
        let body = #"{"Id":"c1","Names":["/x"],"Labels":{"a":"b"},"State":"running","AddedInAPI1_99":{"deep":[{}]}}"#
        let list = try DockerAnswers.decode([ContainerSummary].self, Data("[\(body)]".utf8))
        #expect(list.map(\.id) == ["c1"] && list[0].labels == ["a": "b"])
    }

    @Test func anAnswerNestedTooDeepIsRefusedBeforeDecoding() {
        let body = Data(("[" + String(repeating: "{\"a\":", count: 40)).utf8)
        let error = #expect(throws: RuntimeError.self) { try DockerAnswers.decode([ContainerSummary].self, body) }
        #expect(error?.code == .engine)
        #expect(error?.message == "the engine's answer for Array<ContainerSummary> is refused: JSON nested deeper than the depth limit of 32 (at byte 156)")
    }

    @Test func errorMessagesAndPullErrorsAreRead() {
        #expect(DockerAnswers.message(Data(#"{"message":"No such container: c1"}"#.utf8)) == "No such container: c1")
        #expect(DockerAnswers.message(Data("  plain text\n".utf8)) == "plain text")
        let deep = String(repeating: "[", count: 40) + #"{"message":"hidden"}"#
        #expect(DockerAnswers.message(Data(deep.utf8)) == deep)
        let stream = "{\"status\":\"Pulling\"}\nnot json\n{\"error\":\"manifest unknown\"}\n"
        #expect(DockerAnswers.pullError(Data(stream.utf8)) == "manifest unknown")
        #expect(DockerAnswers.pullError(Data("{\"status\":\"done\"}\n".utf8)) == nil)
    }

    /// Each input's first byte picks the shape, as in the fuzz target.
    @Test func everyCommittedFuzzInputIsAnsweredWithoutACrash() {
        let seeds = FuzzInputs.seeds("docker")
        #expect(seeds.count >= 4)
        for input in seeds + FuzzInputs.crashes("docker") {
            let body = Data(input.bytes.dropFirst())
            let isSeed = seeds.contains { $0.name == input.name }
            switch (input.bytes.first ?? 0) % 4 {
            case 0: #expect(!isSeed || (try? DockerAnswers.decode(ContainerInspect.self, body)) != nil, "\(input.name)")
            case 1: #expect(!isSeed || (try? DockerAnswers.decode([ContainerSummary].self, body)) != nil, "\(input.name)")
            case 2: #expect(!isSeed || DockerAnswers.message(body).hasPrefix("No such container"), "\(input.name)")
            default: #expect(!isSeed || DockerAnswers.pullError(body) == "manifest unknown", "\(input.name)")
            }
        }
    }
}
