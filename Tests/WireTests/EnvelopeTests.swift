import Domain
import Foundation
import TestSupport
import Testing
import Wire

@Suite struct EnvelopeTests {
    let start = StartTask(taskID: Fixtures.taskA, attempt: 1, spec: Fixtures.spec(["python3", "t.py"]), backend: "touchstone")

    func request(_ command: Command) -> RequestEnvelope {
        RequestEnvelope(
            requestID: Fixtures.request(1), server: Fixtures.gpu1, channel: 1, epoch: 2, sequence: 3,
            sentAt: Fixtures.epoch0, expiresAt: Fixtures.epoch0.addingTimeInterval(60), command: command)
    }

    @Test(arguments: ["hello", "listTasks", "startTask", "stopTask"])
    func requestsRoundTrip(kind: String) throws {
        let command: Command
        switch kind {
        case "hello": command = .hello
        case "listTasks": command = .listTasks
        case "startTask": command = .startTask(start)
        default: command = .stopTask(StopTask(taskID: Fixtures.taskA, attempt: 1, graceSeconds: 5))
        }
        let text = WireCoding.encode(request(command))
        #expect(text.contains(#""kind":"\#(kind)""#))
        #expect(try WireCoding.decodeRequest(text) == request(command))
    }

    @Test func responsesRoundTrip() throws {
        let report = TaskStatusReport(taskID: Fixtures.taskA, attempt: 1, state: .exited, pid: 9, exitCode: 0, outputs: ["m.json": "{}"], labels: ["touchstone.task": "tsk"])
        for body: ResponseBody in [
            .hello(HelloReply(agentVersion: "0.1.0", gpuCount: 0, tasks: [report])), .taskStarted(report), .taskList([report]),
            .taskStopped(report), .error(WireError(.expired, "late")),
        ] {
            let response = ResponseEnvelope(requestID: Fixtures.request(1), server: Fixtures.gpu1, channel: 0, epoch: 0, sequence: 1, agentTime: Fixtures.epoch0, body: body)
            #expect(try WireCoding.decodeResponse(WireCoding.encode(response)) == response)
        }
    }

    @Test func malformedRequestsGetOneLineReasons() {
        let notJSON = #expect(throws: WireError.self) { try WireCoding.decodeRequest("}{ not json") }
        #expect(notJSON?.code == .badRequest)
        #expect(notJSON?.message == "malformed request: not valid JSON")

        var text = WireCoding.encode(request(.hello))
        text = text.replacingOccurrences(of: #""kind":"hello""#, with: #""kind":"formatDisk""#)
        let unknown = #expect(throws: WireError.self) { try WireCoding.decodeRequest(text) }
        #expect(unknown?.message.contains("unknown command \"formatDisk\"") == true)
        #expect(WireCoding.salvageRequestID(text) == Fixtures.request(1))

        let missing = #expect(throws: WireError.self) { try WireCoding.decodeRequest(#"{"v":1,"requestID":"x"}"#) }
        #expect(missing?.message.contains("missing field") == true)

        let future = WireCoding.encode(request(.hello)).replacingOccurrences(of: #""v":1"#, with: #""v":9"#)
        let version = #expect(throws: WireError.self) { try WireCoding.decodeRequest(future) }
        #expect(version?.message.contains("protocol version 9") == true)
    }

    @Test func queueNamesFollowTheConvention() {
        let channel = ChannelID(server: Fixtures.gpu1, index: 2)
        #expect(ChannelQueues.requestQueue(prefix: "touchstone", channel: channel) == "touchstone-gpu-01-2-req.fifo")
        #expect(ChannelQueues.responseQueue(prefix: "touchstone", channel: channel) == "touchstone-gpu-01-2-resp.fifo")
    }

    @Test func everyValidServerNameGetsQueueNamesSQSAccepts() throws {
        let longest = String(repeating: "a", count: 62) + "b"
        let sibling = String(repeating: "a", count: 62) + "c"
        var names: Set<String> = []
        for server in [longest, sibling, "dgx2.lab.example.com", String(repeating: "x", count: 52)] {
            let id = try #require(ServerID(rawValue: server))
            for index in [0, 15] {
                let channel = ChannelID(server: id, index: index)
                for name in [
                    ChannelQueues.requestQueue(prefix: "touchstone", channel: channel),
                    ChannelQueues.responseQueue(prefix: "touchstone", channel: channel),
                ] {
                    let dlq = String(name.dropLast(5)) + "-dlq.fifo"
                    #expect(dlq.count <= ChannelQueues.maximumQueueNameLength, "\(dlq)")
                    #expect(name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) })
                    #expect(names.insert(name).inserted, "two servers share \(name)")
                }
            }
        }
        // Names that fit are kept as they are.
        let fits = ChannelID(server: ServerID(rawValue: String(repeating: "x", count: 52))!, index: 15)
        #expect(ChannelQueues.requestQueue(prefix: "touchstone", channel: fits).contains(String(repeating: "x", count: 52)))
    }
}
