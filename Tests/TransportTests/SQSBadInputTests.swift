import Foundation
import AsyncHTTPClient
import Logging
import NIOCore
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

/// Servers that are not SQS at all. The HTML one is `tools/lib/html503_server.py`, started by `tools/test`
/// (`TOUCHSTONE_HTML503_ENDPOINT`); the others need nothing.
@Suite(.timeLimit(.minutes(1))) struct SQSBrokenServerTests {
    /// A server that answers every request with an HTML 503 page: `.serviceUnavailable` after the bounded retries.
    @Test(
        .enabled(
            if: SQSTestServer.html503Endpoint != nil || SQSTestServer.required,
            "TOUCHSTONE_HTML503_ENDPOINT is not set: run tools/test"))
    func reportsAnHTMLServiceUnavailablePage() async throws {
        let endpoint = try #require(
            SQSTestServer.html503Endpoint, "TOUCHSTONE_HTML503_ENDPOINT is not set, but TOUCHSTONE_REQUIRE_SQS=1")
        let before = try await requestCount(endpoint)
        let client = try SQSClient(
            configuration: SQSConfiguration(
                region: "us-east-1", endpoint: endpoint,
                credentials: AWSCredentials(accessKeyID: "AKID", secretAccessKey: "secret"),
                retry: SQSRetryPolicy(maximumAttempts: 3, baseDelay: .milliseconds(10), maximumDelay: .milliseconds(50))),
            logger: .init(label: "test"))
        let error = await #expect(throws: QueueError.self) { _ = try await client.queueURL(named: "q.fifo") }
        #expect(error?.code == .serviceUnavailable)
        #expect(error?.message.contains("HTTP 503") ?? false)
        #expect(error?.message.contains("text/html") ?? false)
        #expect(try await requestCount(endpoint) - before == 3)
    }

    @Test func reportsARefusedConnection() async throws {
        let client = try SQSClient(
            configuration: SQSConfiguration(
                region: "us-east-1", endpoint: "http://127.0.0.1:9",
                credentials: AWSCredentials(accessKeyID: "AKID", secretAccessKey: "secret"),
                retry: SQSRetryPolicy(maximumAttempts: 2, baseDelay: .milliseconds(10))),
            logger: .init(label: "test"))
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: QueueError.self) { _ = try await client.queueURL(named: "q.fifo") }
        #expect(error?.code == .connectionFailed)
        #expect(clock.now - start < .seconds(15))
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

    /// How many POSTs the HTML server has had (its `GET /count`).
    private func requestCount(_ endpoint: String) async throws -> Int {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: endpoint + "/count"), timeout: .seconds(5))
        let body = try await response.body.collect(upTo: 1_024)
        return try #require(Int(String(buffer: body)))
    }
}
