import Foundation
import Logging
import Testing
import Transport

/// What goes wrong against a real server: each case is a clear ``QueueError`` (or a prompt cancellation), no crash.
@Suite(
    .enabled(if: SQSTestServer.ministackEnabled, "TOUCHSTONE_SQS_ENDPOINT is not set: run tools/test to start ministack"),
    .timeLimit(.minutes(1))
)
struct SQSBadInputTests {
    @Test func reportsAQueueThatDoesNotExist() async throws {
        let client = try SQSTestServer.requireMinistack().client()
        let missing = await #expect(throws: QueueError.self) {
            _ = try await client.queue(named: SQSTestServer.uniqueQueueName("missing"))
        }
        #expect(missing?.code == .queueDoesNotExist)

        let name = SQSTestServer.uniqueQueueName()
        try await client.createQueue(named: name, deadLetterQueue: false)
        let queue = try await client.queue(named: name)
        try await client.deleteQueue(url: queue.url)
        let deleted = await #expect(throws: QueueError.self) {
            _ = try await queue.send("hello", groupID: "g", deduplicationID: "d")
        }
        #expect(deleted?.code == .queueDoesNotExist)
    }

    /// With `AUTH=true` ministack verifies SigV4: a request signed with the wrong secret is refused, not retried.
    @Test func refusesAWrongSignature() async throws {
        let server = try SQSTestServer.requireMinistack()
        var wrong = server.credentials
        wrong.secretAccessKey += "-wrong"
        let client = try server.client(credentials: wrong)
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: QueueError.self) {
            _ = try await client.createQueue(named: SQSTestServer.uniqueQueueName(), deadLetterQueue: false)
        }
        #expect(error?.code == .invalidSignature)
        #expect(!(error?.description.contains(wrong.secretAccessKey) ?? true))
        #expect(clock.now - start < .seconds(2))
    }

    @Test func refusesAnUnknownAccessKey() async throws {
        let server = try SQSTestServer.requireMinistack()
        let client = try server.client(
            credentials: AWSCredentials(accessKeyID: "AKIAUNKNOWNKEY000000", secretAccessKey: "whatever"))
        let error = await #expect(throws: QueueError.self) {
            _ = try await client.queueURL(named: SQSTestServer.uniqueQueueName())
        }
        #expect(error?.code == .invalidCredentials)
    }

    @Test func refusesMalformedAndOversizeMessagesBeforeSending() async throws {
        let client = try SQSTestServer.requireMinistack().client()
        let name = SQSTestServer.uniqueQueueName()
        try await client.createQueue(named: name, attributes: QueueAttributes(maximumMessageSize: 1_024))
        let queue = try await client.queue(named: name)
        #expect(queue.maximumMessageSize == 1_024)
        let oversize = await #expect(throws: QueueError.self) {
            _ = try await queue.send(String(repeating: "ü", count: 513), groupID: "g", deduplicationID: "big")
        }
        #expect(oversize?.code == .messageTooLarge)
        let malformed = await #expect(throws: QueueError.self) {
            _ = try await queue.send("{\"half\": \u{0}", groupID: "g", deduplicationID: "nul")
        }
        #expect(malformed?.code == .invalidParameter)
        #expect(try await queue.approximateCounts() == QueueCounts(visible: 0, inFlight: 0))
    }

    /// A long poll of 20 s ends promptly when its task is cancelled.
    @Test func cancelsALongPoll() async throws {
        let client = try SQSTestServer.requireMinistack().client()
        let name = SQSTestServer.uniqueQueueName()
        try await client.createQueue(named: name, deadLetterQueue: false)
        let queue = try await client.queue(named: name)
        let clock = ContinuousClock()
        let start = clock.now
        let poll = Task { try await queue.receive(maxMessages: 1, waitTime: .seconds(20), visibilityTimeout: nil) }
        try await Task.sleep(for: .milliseconds(300))
        poll.cancel()
        let outcome = await poll.result
        #expect(clock.now - start < .seconds(3))
        #expect(throws: CancellationError.self) { try outcome.get() }
    }
}

/// Servers that are not SQS at all: these need no SQS server and always run.
@Suite(.timeLimit(.minutes(1))) struct SQSBrokenServerTests {
    /// A server that answers every request with an HTML 503 page: `.serviceUnavailable` after the bounded retries.
    @Test func reportsAnHTMLServiceUnavailablePage() async throws {
        let server = try HTMLErrorServer.start()
        defer { server.stop() }
        let client = try SQSClient(
            configuration: SQSConfiguration(
                region: "us-east-1", endpoint: server.endpoint,
                credentials: AWSCredentials(accessKeyID: "AKID", secretAccessKey: "secret"),
                retry: SQSRetryPolicy(maximumAttempts: 3, baseDelay: .milliseconds(10), maximumDelay: .milliseconds(50))),
            logger: .init(label: "test"))
        let error = await #expect(throws: QueueError.self) { _ = try await client.queueURL(named: "q.fifo") }
        #expect(error?.code == .serviceUnavailable)
        #expect(error?.message.contains("HTTP 503") ?? false)
        #expect(error?.message.contains("text/html") ?? false)
        #expect(server.requestCount() == 3)
    }

    @Test func reportsARefusedConnection() async throws {
        let client = try SQSClient(
            configuration: SQSConfiguration(
                region: "us-east-1", endpoint: "http://127.0.0.1:9",
                credentials: AWSCredentials(accessKeyID: "AKID", secretAccessKey: "secret"),
                retry: SQSRetryPolicy(maximumAttempts: 2, baseDelay: .milliseconds(10))),
            logger: .init(label: "test"))
        let error = await #expect(throws: QueueError.self) { _ = try await client.queueURL(named: "q.fifo") }
        #expect(error?.code == .connectionFailed)
    }

    @Test func refusesAnEndpointThatIsNotAURL() {
        let error = #expect(throws: QueueError.self) {
            _ = try SQSClient(
                configuration: SQSConfiguration(
                    region: "us-east-1", endpoint: "not a url",
                    credentials: AWSCredentials(accessKeyID: "AKID", secretAccessKey: "secret")),
                logger: .init(label: "test"))
        }
        #expect(error?.code == .invalidParameter)
    }
}

/// A Python `http.server` on 127.0.0.1 (a free port) answering every POST with an HTML 503 page, and counting them.
final class HTMLErrorServer {
    let endpoint: String
    private let process: Process
    private let countFile: String

    private init(endpoint: String, process: Process, countFile: String) {
        self.endpoint = endpoint
        self.process = process
        self.countFile = countFile
    }

    static func start() throws -> HTMLErrorServer {
        let countFile = NSTemporaryDirectory() + "touchstone-html-\(UUID().uuidString)"
        let script = """
            import http.server, sys
            count = 0
            class H(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    global count
                    self.rfile.read(int(self.headers.get("Content-Length", 0)))
                    count += 1
                    open(sys.argv[1], "w").write(str(count))
                    body = b"<html><body><h1>503 Service Unavailable</h1></body></html>"
                    self.send_response(503)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                def log_message(self, *args): pass
            server = http.server.HTTPServer(("127.0.0.1", 0), H)
            print(server.server_address[1], flush=True)
            server.serve_forever()
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, countFile]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let port = try #require(
            Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)),
            "the HTML error server did not start")
        return HTMLErrorServer(endpoint: "http://127.0.0.1:\(port)", process: process, countFile: countFile)
    }

    func requestCount() -> Int {
        (try? String(contentsOfFile: countFile, encoding: .utf8)).flatMap { Int($0) } ?? 0
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: countFile)
    }
}
