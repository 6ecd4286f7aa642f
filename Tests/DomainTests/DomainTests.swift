import Domain
import Foundation
import TestSupport
import Testing

@Suite struct DomainEventCodecTests {
    static let samples: [DomainEvent] = [
        .serverAttached(ServerAttached(serverID: Fixtures.gpu1, maxTasks: 2, channels: 3)),
        .serverHelloReceived(ServerHelloReceived(serverID: Fixtures.gpu1, agentVersion: "0.1.0", agentTime: Fixtures.epoch0, clockSkewMilliseconds: 5, runningTasks: [TaskAttempt(taskID: Fixtures.taskA, attempt: 1)], gpuCount: 0)),
        .taskSubmitted(TaskSubmitted(taskID: Fixtures.taskA, spec: TaskSpec(name: "n", command: ["a", "b"], environment: ["K": "V"], files: [WorkingFile(path: "f.py", contents: Data("print(1)".utf8))], outputs: ["m.json"], gpus: 1, timeoutSeconds: 60, image: "touchstone-train:1"))),
        .taskDispatched(TaskDispatched(taskID: Fixtures.taskA, attempt: 1, serverID: Fixtures.gpu1, requestID: Fixtures.request(1))),
        .taskStarted(TaskStarted(taskID: Fixtures.taskA, attempt: 1, serverID: Fixtures.gpu1, pid: 4, startedAt: Fixtures.epoch0)),
        .taskFinished(TaskFinished(taskID: Fixtures.taskA, attempt: 1, serverID: Fixtures.gpu1, outcome: .failed, exitCode: 2, signal: nil, failureClass: .user, reason: "exit code 2", outputs: ["m.json": "{}"], endedAt: Fixtures.epoch0)),
        .requestSent(RequestSent(channel: ChannelID(server: Fixtures.gpu1, index: 1), requestID: Fixtures.request(2), epoch: 0, sequence: 3, command: "hello", taskID: nil, expiresAt: Fixtures.epoch0, messageID: "m")),
        .responseReceived(ResponseReceived(channel: ChannelID(server: Fixtures.gpu1, index: 1), requestID: Fixtures.request(2), epoch: 0, status: "ok", message: nil, agentTime: Fixtures.epoch0, messageID: "r")),
        .responseRejected(ResponseRejected(channel: ChannelID(server: Fixtures.gpu1, index: 1), messageID: "x", reason: "malformed", requestID: nil, bodyPrefix: "{")),
        .serverCapacitySet(ServerCapacitySet(serverID: Fixtures.gpu1, maxTasks: 3)),
        .serverDrainRequested(ServerDrainRequested(serverID: Fixtures.gpu1, deadline: Fixtures.epoch0, reason: "r")),
        .serverDetachRequested(ServerDetachRequested(serverID: Fixtures.gpu1, force: true)),
        .serverDetached(ServerDetached(serverID: Fixtures.gpu1)),
        .serverLivenessChanged(ServerLivenessChanged(serverID: Fixtures.gpu1, reachable: false, missedHeartbeats: 3)),
        .serverGPUsObserved(ServerGPUsObserved(serverID: Fixtures.gpu1, gpus: [GPUDevice(index: 0, uuid: "GPU-1", name: "A100", memoryTotalMiB: nil, memoryUsedMiB: 1, utilizationPercent: nil, foreignProcesses: 1)], problem: "p")),
        .taskDispatchWithdrawn(TaskDispatchWithdrawn(taskID: Fixtures.taskA, attempt: 1, serverID: Fixtures.gpu1, reason: "w")),
        .taskRequeued(TaskRequeued(taskID: Fixtures.taskA, afterAttempt: 1, reason: "q")),
        .transportFailed(TransportFailed(channel: ChannelID(server: Fixtures.gpu1, index: 0), operation: "send", code: "queueDoesNotExist", message: "m")),
        .channelDesyncDetected(ChannelDesyncDetected(channel: ChannelID(server: Fixtures.gpu1, index: 1), epoch: 2, reason: "staleEpoch", expectedRequestID: Fixtures.request(1), receivedRequestID: Fixtures.request(2), receivedEpoch: 1, messageID: "m")),
        .channelQueuesDrained(ChannelQueuesDrained(channel: ChannelID(server: Fixtures.gpu1, index: 1), fromEpoch: 2, toEpoch: 3, requests: [DrainedMessage(messageID: "a", summary: "request hello")], responses: [])),
        .unrecognisedTaskFound(UnrecognisedTaskFound(serverID: Fixtures.gpu1, taskID: Fixtures.taskA, attempt: 2, reason: "no such task in the log")),
        .taskCancelRequested(TaskCancelRequested(taskID: Fixtures.taskA, reason: "wrong data")),
        .taskStartSending(TaskStartSending(taskID: Fixtures.taskA, attempt: 1, requestID: Fixtures.request(1), serverID: Fixtures.gpu1, channel: 1, expiresAt: Fixtures.epoch0)),
        .transfer(.started(TransferStarted(transferID: "put-t-1-0", taskID: Fixtures.taskA, attempt: 1, serverID: Fixtures.gpu1, direction: .put, path: "d/in.bin", size: 10, sha256: String(repeating: "a", count: 64), chunkCount: 1, chunksHeld: 0))),
        .transfer(.completed(TransferCompleted(transferID: "get-t-1-m", taskID: Fixtures.taskA, attempt: 1, serverID: Fixtures.gpu1, direction: .get, path: "m.pt", size: 10, sha256: String(repeating: "b", count: 64), chunkCount: 1, chunksSent: 1))),
        .transfer(.failed(TransferFailed(transferID: "put-t-1-0", taskID: Fixtures.taskA, attempt: 1, serverID: Fixtures.gpu1, direction: .put, path: "d/in.bin", code: "checksumMismatch", reason: "r", chunksSent: 3))),
        .transfer(.rejected(TransferRejected(taskID: Fixtures.taskA, attempt: 1, serverID: nil, direction: .get, path: "../x", code: "pathEscapes", reason: "r"))),
    ]

    @Test func samplesCoverEveryTransferEventType() {
        let types = Set(Self.samples.map { DomainEventCodec.encode($0).type }.filter { $0.hasPrefix("transfer.") })
        #expect(types == ["transfer.started", "transfer.completed", "transfer.failed", "transfer.rejected"])
    }

    @Test func aSpecWithoutInputsEncodesAsBeforeAndOldSpecsDecode() throws {
        let old = Data(#"{"command":["a"],"environment":{},"files":[],"gpus":0,"outputs":["m.json"],"priority":0}"#.utf8)
        let spec = try JSONDecoder().decode(TaskSpec.self, from: old)
        #expect(spec.inputs == [])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        #expect(try encoder.encode(spec) == old)
    }

    @Test(arguments: samples)
    func roundTripsThroughTypeSchemaAndJSON(event: DomainEvent) throws {
        let (type, schema, payload) = DomainEventCodec.encode(event)
        #expect(schema == 1)
        #expect(try DomainEventCodec.decode(type: type, schema: schema, payload: payload, position: 1) == event)
    }

    @Test func golden_serverAttached_v1() throws {
        let payload = Data(#"{"channels":3,"maxTasks":2,"serverID":"gpu-01"}"#.utf8)
        let event = try DomainEventCodec.decode(type: "server.attached", schema: 1, payload: payload, position: 1)
        #expect(event == .serverAttached(ServerAttached(serverID: Fixtures.gpu1, maxTasks: 2, channels: 3)))
        #expect(DomainEventCodec.encode(event).payload == payload)
    }

    @Test func unknownTypeOrSchemaIsAnErrorNamingThePosition() {
        let unknown = #expect(throws: DomainEventCodec.DecodeError.self) {
            try DomainEventCodec.decode(type: "task.teleported", schema: 1, payload: Data("{}".utf8), position: 42)
        }
        #expect(unknown?.kind == .unknownEventType)
        #expect(unknown?.message.contains("42") == true)
        let future = #expect(throws: DomainEventCodec.DecodeError.self) {
            try DomainEventCodec.decode(type: "task.submitted", schema: 99, payload: Data("{}".utf8), position: 7)
        }
        #expect(future?.kind == .unknownEventType)
        let corrupt = #expect(throws: DomainEventCodec.DecodeError.self) {
            try DomainEventCodec.decode(type: "server.attached", schema: 1, payload: Data("{\"serverID\":5}".utf8), position: 8)
        }
        #expect(corrupt?.kind == .corruptPayload)
    }
}

@Suite struct IdentifierTests {
    @Test func requestIDsAreVersion7AndSortByTime() {
        var generator = SeededGenerator(seed: 1)
        let early = RequestID.make(now: Date(timeIntervalSince1970: 1_700_000_000), using: &generator)
        let late = RequestID.make(now: Date(timeIntervalSince1970: 1_700_000_001), using: &generator)
        #expect(early.rawValue.count == 36)
        let chars = Array(early.rawValue)
        #expect(chars[14] == "7")
        #expect("89ab".contains(chars[19]))
        #expect(early.rawValue < late.rawValue)
        #expect(UUID(uuidString: early.rawValue) != nil)
    }

    @Test func serverNamesAreDNSLabels() {
        #expect(ServerID(rawValue: "gpu-07") != nil)
        #expect(ServerID(rawValue: "") == nil)
        #expect(ServerID(rawValue: "-gpu") == nil)
        #expect(ServerID(rawValue: "GPU") == nil)
        #expect(ServerID(rawValue: "gpu_1") == nil)
        #expect(ServerID(rawValue: String(repeating: "a", count: 64)) == nil)
    }

    @Test func taskSpecValidationNamesTheProblem() {
        #expect(throws: TaskSpecError.self) { try TaskSpec(command: []).validate() }
        #expect(throws: TaskSpecError.self) { try TaskSpec(command: [""]).validate() }
        #expect(throws: TaskSpecError.self) { try TaskSpec(command: ["x"], files: [WorkingFile(path: "../evil", contents: Data())]).validate() }
        #expect(throws: TaskSpecError.self) { try TaskSpec(command: ["x"], files: [WorkingFile(path: "/etc/passwd", contents: Data())]).validate() }
        #expect(throws: TaskSpecError.self) { try TaskSpec(command: ["x"], outputs: ["a/../../b"]).validate() }
        #expect(throws: TaskSpecError.self) {
            try TaskSpec(command: ["x"], files: [WorkingFile(path: "big", contents: Data(count: TaskSpec.maxInlineFileBytes + 1))]).validate()
        }
        #expect(throws: Never.self) { try TaskSpec(command: ["x"], files: [WorkingFile(path: "a/b.py", contents: Data())], outputs: ["out/m.json"]).validate() }
    }
}
