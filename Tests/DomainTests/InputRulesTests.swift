import Domain
import Foundation
import TestSupport
import Testing

/// The log's and the task spec's input rules (docs/input-limits.md).
@Suite struct InputRulesTests {
    // MARK: Event payloads: unknown fields ignored, unknown (type, schema) refused, limits first

    func decodeBothWays(_ type: String, _ schema: Int, _ payload: String) throws -> [DomainEvent] {
        [
            try DomainEventCodec.decode(type: type, schema: schema, payload: Data(payload.utf8), position: 7),
            try DomainEventCodec.decodeWithFoundation(type: type, schema: schema, payload: Data(payload.utf8), position: 7),
        ]
    }

    @Test func schema1PayloadsIgnoreUnknownFields() throws {
        let event = DomainEvent.serverAttached(ServerAttached(serverID: Fixtures.gpu1, maxTasks: 2, channels: 3))
        let (type, schema, payload) = DomainEventCodec.encode(event)
        let extended = String(decoding: payload, as: UTF8.self)
            .replacingOccurrences(of: "{", with: #"{"zzAddedLater":{"a":[1,{"b":null}]},"#)
        #expect(extended.contains("zzAddedLater"))
        #expect(try decodeBothWays(type, schema, extended) == [event, event])
    }

    @Test func unknownTypesAndSchemaVersionsAreRefused() {
        for (type, schema) in [("server.attached", 2), ("server.exploded", 1)] {
            let error = #expect(throws: DomainEventCodec.DecodeError.self) {
                try DomainEventCodec.decode(type: type, schema: schema, payload: Data("{}".utf8), position: 7)
            }
            #expect(error?.kind == .unknownEventType)
            #expect(error?.message == "event at position 7 has type \(type) v\(schema), which this build does not know")
        }
    }

    @Test func payloadsOverTheLimitsAreCorruptNamingTheLimit() {
        let deep = #"{"serverID":"gpu-01","maxTasks":1,"channels":1,"zz":"# + String(repeating: "[", count: 65)
            + String(repeating: "]", count: 65) + "}"
        for decode in [
            { try DomainEventCodec.decode(type: "server.attached", schema: 1, payload: Data(deep.utf8), position: 9) },
            {
                try DomainEventCodec.decodeWithFoundation(
                    type: "server.attached", schema: 1, payload: Data(deep.utf8), position: 9)
            },
        ] as [() throws -> DomainEvent] {
            let error = #expect(throws: DomainEventCodec.DecodeError.self) { try decode() }
            #expect(error?.kind == .corruptPayload)
            #expect(
                error?.message
                    == "event at position 9 (server.attached v1): JSON nested deeper than the depth limit of 64 (at byte 115)")
        }
    }

    // MARK: Environment variable names

    @Test(arguments: ["A", "_", "PATH", "lower_case", "_X1", "CUDA_VISIBLE_DEVICES", String(repeating: "N", count: 255)])
    func portableNamesAreAccepted(name: String) {
        #expect(EnvironmentName.problem(name) == nil)
    }

    @Test(arguments: [
        "", "1X", "A-B", "A=B", "A B", "A\0B", "É", "A.B", "$A", String(repeating: "N", count: 256), "ÄRGER", "A\n",
    ])
    func otherNamesAreRefusedInOneLine(name: String) throws {
        let problem = try #require(EnvironmentName.problem(name))
        #expect(problem == "environment variable name \(name.debugDescription) is not valid: \(EnvironmentName.shape)")
        #expect(!problem.contains("\n"))
    }

    @Test func theSpecChecksEnvironmentNames() {
        var spec = Fixtures.spec()
        spec.environment = ["9LIVES": "x"]
        #expect(throws: TaskSpecError("environment variable name \"9LIVES\" is not valid: \(EnvironmentName.shape)")) {
            try spec.validate()
        }
        spec.environment = ["OK_1": "x"]
        #expect(throws: Never.self) { try spec.validate() }
    }

    // MARK: Paths

    @Test(arguments: ["a", "a/b/c.txt", "./a", "a//b", "..a/b..", "a/.../b", String(repeating: "n", count: 255)])
    func confinedPathsAreAccepted(path: String) {
        #expect(RelativePath.problem(path) == nil)
        #expect(RelativePath.isConfined(path))
    }

    @Test(arguments: [
        ("", "the path is empty"),
        ("/etc/passwd", #"path "/etc/passwd" is absolute: it must be relative to the task's directory"#),
        ("a/../../b", #"path "a/../../b" has a '..' component: it must stay inside the task's directory"#),
        ("..", #"path ".." has a '..' component: it must stay inside the task's directory"#),
        ("a\0b", #"path "a\0b" holds a NUL byte"#),
        (String(repeating: "n", count: 256), "path \(String(repeating: "n", count: 80).debugDescription)… has a component of 256 bytes, over 255"),
        (String(repeating: "nnn/", count: 1025), "path \(String(repeating: "nnn/", count: 20).debugDescription)… is 4100 bytes, over 4096"),
    ])
    func escapingOrOversizedPathsAreRefusedInOneLine(path: String, problem: String) {
        #expect(RelativePath.problem(path) == problem)
        #expect(!RelativePath.isConfined(path))
    }

    @Test func theSpecNamesWhichPathIsWrong() {
        var spec = Fixtures.spec()
        spec.outputs = ["../secret"]
        #expect(throws: TaskSpecError(#"output: path "../secret" has a '..' component: it must stay inside the task's directory"#)) {
            try spec.validate()
        }
    }

    // MARK: Labels (one validator, ServerLabels, for server labels and task constraints)

    @Test func labelsAndConstraintsShareOneValidator() {
        #expect(ServerLabels.problem(label: "gpu", value: "a100") == nil)
        #expect(ServerLabels.problem(label: "GPU", value: "a100") == "GPU=a100 does not fit: \(ServerLabels.shape)")
        var spec = Fixtures.spec()
        spec.constraints = ["gpu": "a,b"]
        #expect(throws: TaskSpecError("--constraint: gpu=a,b does not fit: \(ServerLabels.shape)")) { try spec.validate() }
    }
}
