import Domain
import Foundation
import TestSupport
import Testing

/// The fast decode path must decode every event exactly as Foundation's `JSONDecoder` configured by
/// `DomainEventCodec.makeDecoder()` does.
@Suite struct FastJSONDecoderTests {
    /// Strings that stress escaping: quotes, backslashes, control characters, non-ASCII, astral characters.
    static func randomString(using g: inout SeededGenerator) -> String {
        let pieces = ["a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\u{01}", "\u{1F}", "é", "日本", "🚀", "\u{7F}", "x-y", "{", "]", ":"]
        return (0..<Int.random(in: 0...12, using: &g)).map { _ in pieces.randomElement(using: &g)! }.joined()
    }

    static func randomDate(using g: inout SeededGenerator) -> Date {
        // Whole and fractional milliseconds, before and after 1970.
        let seconds = Double(Int64.random(in: -2_000_000_000...4_000_000_000, using: &g))
        let fraction = Bool.random(using: &g) ? Double.random(in: 0..<1, using: &g) : Double(Int.random(in: 0..<1000, using: &g)) / 1000
        return Date(timeIntervalSince1970: seconds + fraction)
    }

    static func randomEvent(using g: inout SeededGenerator) -> DomainEvent {
        let server = ServerID(rawValue: "gpu-\(Int.random(in: 0...99, using: &g))")!
        let task = TaskID.random(using: &g)
        let request = RequestID.make(now: randomDate(using: &g), using: &g)
        let channel = ChannelID(server: server, index: Int.random(in: 0...8, using: &g))
        func maybe<T>(_ value: T) -> T? { Bool.random(using: &g) ? value : nil }
        let text = randomString(using: &g)
        switch Int.random(in: 0..<8, using: &g) {
        case 0:
            let spec = TaskSpec(
                name: maybe(randomString(using: &g)), command: (0..<Int.random(in: 1...4, using: &g)).map { _ in randomString(using: &g) },
                environment: Dictionary(uniqueKeysWithValues: (0..<Int.random(in: 0...3, using: &g)).map { ("K\($0)\(text)", randomString(using: &g)) }),
                files: (0..<Int.random(in: 0...2, using: &g)).map {
                    WorkingFile(path: "f\($0).py", contents: Data((0..<Int.random(in: 0...40, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) }), executable: Bool.random(using: &g))
                },
                outputs: [text], gpus: Int.random(in: 0...8, using: &g), timeoutSeconds: maybe(Int.random(in: 1...100_000, using: &g)),
                priority: Int.random(in: -1_000_000...1_000_000, using: &g), image: maybe("img:\(Int.random(in: 0...9, using: &g))"),
                inputs: Bool.random(using: &g) ? [] : [InputFile(path: "in.bin", size: Int64.random(in: 0...Int64.max, using: &g), sha256: String(repeating: "c", count: 64))])
            return .taskSubmitted(TaskSubmitted(taskID: task, spec: spec))
        case 1:
            return .taskFinished(TaskFinished(
                taskID: task, attempt: Int.random(in: 1...5, using: &g), serverID: maybe(server), outcome: TaskOutcome.allCases.randomElement(using: &g)!,
                exitCode: maybe(Int32.random(in: Int32.min...Int32.max, using: &g)), signal: maybe(Int32.random(in: 1...64, using: &g)),
                failureClass: maybe(.infrastructure), reason: maybe(text), outputs: [text: randomString(using: &g), "m.json": "{\"loss\": 0.5}"],
                endedAt: maybe(randomDate(using: &g))))
        case 2:
            return .serverHelloReceived(ServerHelloReceived(
                serverID: server, agentVersion: text, agentTime: randomDate(using: &g), clockSkewMilliseconds: Int64.random(in: Int64.min...Int64.max, using: &g),
                runningTasks: (0..<Int.random(in: 0...3, using: &g)).map { TaskAttempt(taskID: TaskID.random(using: &g), attempt: $0) },
                gpuCount: Int.random(in: 0...8, using: &g),
                gpus: maybe([GPUDevice(index: 0, uuid: text, name: "A100", memoryTotalMiB: maybe(80_000), memoryUsedMiB: maybe(1), utilizationPercent: maybe(99), foreignProcesses: 2)])))
        case 3:
            return .requestSent(RequestSent(
                channel: channel, requestID: request, epoch: Int64.random(in: 0...Int64.max, using: &g), sequence: Int64.random(in: 0...1_000_000, using: &g),
                command: text, taskID: maybe(task), expiresAt: randomDate(using: &g), executionSeconds: maybe(Int.random(in: 0...10_000, using: &g)), messageID: text))
        case 4:
            return .responseReceived(ResponseReceived(
                channel: channel, requestID: request, epoch: 3, status: text, message: maybe(randomString(using: &g)), agentTime: randomDate(using: &g), messageID: "m"))
        case 5:
            return .channelQueuesDrained(ChannelQueuesDrained(
                channel: channel, fromEpoch: 1, toEpoch: 2, requests: [DrainedMessage(messageID: text, summary: randomString(using: &g))], responses: []))
        case 6:
            return .serverDrainRequested(ServerDrainRequested(serverID: server, deadline: maybe(randomDate(using: &g)), reason: maybe(text)))
        default:
            return .taskDispatched(TaskDispatched(
                taskID: task, attempt: 1, serverID: server, requestID: request, gpuIndices: maybe((0..<Int.random(in: 0...4, using: &g)).map { $0 })))
        }
    }

    @Test(arguments: DomainEventCodecTests.samples)
    func everyEventTypeDecodesAsJSONDecoderDoes(event: DomainEvent) throws {
        let (type, schema, payload) = DomainEventCodec.encode(event)
        let reference = try DomainEventCodec.decodeWithFoundation(type: type, schema: schema, payload: payload, position: 1)
        #expect(try DomainEventCodec.decode(type: type, schema: schema, payload: payload, position: 1) == reference)
    }

    @Test func randomEventsDecodeAsJSONDecoderDoes() throws {
        var generator = SeededGenerator(seed: 11)
        for _ in 0..<2_000 {
            let event = Self.randomEvent(using: &generator)
            let (type, schema, payload) = DomainEventCodec.encode(event)
            let reference = try DomainEventCodec.decodeWithFoundation(type: type, schema: schema, payload: payload, position: 7)
            let fast = try DomainEventCodec.decode(type: type, schema: schema, payload: payload, position: 7)
            #expect(fast == reference, "\(String(decoding: payload, as: UTF8.self))")
        }
    }

    @Test func handWrittenJSONDecodesAsJSONDecoderDoes() throws {
        // Whitespace, escapes (\u with surrogate pairs), fractional and exponent dates, keys in any order, unknown keys.
        let payloads = [
            #" { "serverID" : "gpu-01", "maxTasks": 2 ,"channels":3, "extra": [1, {"a": null}] } "#,
            #"{"channel":{"server":"gpu-01","index":1},"requestID":"r","epoch":0,"status":"o\u006b \ud83d\ude80 \"q\" \\ \/","message":null,"agentTime":1800000000123.5,"messageID":"m"}"#,
            #"{"channel":{"server":"gpu-01","index":1},"requestID":"r","epoch":-0,"status":"ok","agentTime":-1.5e3,"messageID":"m"}"#,
        ]
        let types = ["server.attached", "channel.response.received", "channel.response.received"]
        for (payload, type) in zip(payloads, types) {
            let data = Data(payload.utf8)
            let reference = try DomainEventCodec.decodeWithFoundation(type: type, schema: 1, payload: data, position: 1)
            #expect(try DomainEventCodec.decode(type: type, schema: 1, payload: data, position: 1) == reference)
        }
    }

    @Test func malformedPayloadsFailAsWithJSONDecoderAndNameThePosition() {
        let payloads = [
            #"{"channels":3,"maxTasks":2}"#,  // missing key
            #"{"channels":"3","maxTasks":2,"serverID":"gpu-01"}"#,  // wrong type
            #"{"channels":3.5,"maxTasks":2,"serverID":"gpu-01"}"#,  // not an integer
            #"{"channels":3,"maxTasks":2,"serverID":"gpu-01""#,  // truncated
            #"{"channels":03,"maxTasks":2,"serverID":"gpu-01"}"#,  // leading zero
            #"{"channels":3,"maxTasks":2,"serverID":"gpu-01"} x"#,  // trailing garbage
            #"{"channels":3,"maxTasks":2,"serverID":"gpu\u0001-01"}"#,  // not a DNS label
            #"{"channels":null,"maxTasks":2,"serverID":"gpu-01"}"#,  // null for a number
            "{\"channels\":3,\"maxTasks\":2,\"serverID\":\"gpu\n01\"}",  // raw control character
            #"[]"#,
            "",
        ]
        for payload in payloads {
            let data = Data(payload.utf8)
            #expect(throws: DomainEventCodec.DecodeError.self, "\(payload)") {
                try DomainEventCodec.decodeWithFoundation(type: "server.attached", schema: 1, payload: data, position: 42)
            }
            let error = #expect(throws: DomainEventCodec.DecodeError.self, "\(payload)") {
                try DomainEventCodec.decode(type: "server.attached", schema: 1, payload: data, position: 42)
            }
            #expect(error?.kind == .corruptPayload)
            #expect(error?.message.contains("position 42") == true)
        }
    }
}
