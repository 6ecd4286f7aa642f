import Foundation
import Testing
import Transport

/// A long poll woken by a send from another process, both sides through ``EmbeddedQueueStore``.
///
/// The other process is this test binary again, run with a filter that selects only
/// ``sendsOneMessageWhenLaunchedAsTheHelper()`` and environment variables naming the file and queue.
@Suite(.timeLimit(.minutes(1))) struct CrossProcessWakeUpTests {
    static let databaseVariable = "TOUCHSTONE_TRANSPORT_HELPER_DATABASE"
    static let queueVariable = "TOUCHSTONE_TRANSPORT_HELPER_QUEUE"

    @Test func longPollIsWokenByASendFromAnotherProcess() async throws {
        let fixture = try EmbeddedQueueFixture()
        let queue = try fixture.makeQueue()
        let clock = ContinuousClock()
        async let poll = timedReceive(queue, waitTime: .seconds(20))
        try await Task.sleep(for: .milliseconds(100))

        let helper = Process()
        helper.executableURL = URL(
            fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        helper.arguments = ["--testing-library", "swift-testing", "--filter", "sendsOneMessageWhenLaunchedAsTheHelper"]
        var environment = ProcessInfo.processInfo.environment
        environment[Self.databaseVariable] = fixture.path
        environment[Self.queueVariable] = queue.name
        helper.environment = environment
        helper.standardOutput = FileHandle.nullDevice
        helper.standardError = FileHandle.nullDevice
        let launched = clock.now
        try helper.run()

        let (messages, returnedAt) = try await poll
        let receivedAt = Date()
        while helper.isRunning { try await Task.sleep(for: .milliseconds(10)) }
        #expect(helper.terminationStatus == 0)
        let message = try #require(messages.first)
        #expect(message.body == "from process \(helper.processIdentifier)")
        #expect(returnedAt - launched < .seconds(10))
        // `sentAt` is the helper's wall clock just before its commit; the span covers both commits (synchronous=FULL).
        let latency = receivedAt.timeIntervalSince(message.sentAt)
        #expect(latency < 1)
        print("EmbeddedQueue wake-up by another process: helper's send to receive return \(latency * 1_000) ms")
    }

    /// The child half of ``longPollIsWokenByASendFromAnotherProcess()``: sends one message when the environment
    /// names a queue, and does nothing in an ordinary test run.
    @Test func sendsOneMessageWhenLaunchedAsTheHelper() async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let path = environment[Self.databaseVariable], let name = environment[Self.queueVariable] else { return }
        let store = try EmbeddedQueueStore(path: path)
        defer { store.close() }
        let pid = ProcessInfo.processInfo.processIdentifier
        _ = try await store.queue(named: name).send("from process \(pid)", groupID: "g", deduplicationID: "helper")
    }
}
