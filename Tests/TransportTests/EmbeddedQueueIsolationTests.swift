import Foundation
import Testing

@testable import Transport

#if canImport(Glibc)
    import Glibc
#endif

/// Queues of one host do not disturb each other: a write wakes only the polls on its queue (in this process and in
/// others), and a process frozen while it holds one server's queue file does not stop another server's queues.
///
/// Wake-ups are counted with ``EmbeddedQueueStore/wakeCount(of:)``: each wait of a long poll that a ring ended. Under
/// load a poll may start after the send it waits for (then nothing needs to wake it), so a count is at most one.
@Suite(.timeLimit(.minutes(1))) struct EmbeddedQueueIsolationTests {
    static let pathVariable = "TOUCHSTONE_ISOLATION_HELPER_PATH"
    static let queuesVariable = "TOUCHSTONE_ISOLATION_HELPER_QUEUES"

    /// Sends to queue A in this process leave a poll on queue B asleep: only B's own send wakes it.
    @Test func aSendWakesOnlyPollsOnItsQueue() async throws {
        let fixture = try EmbeddedQueueFixture()
        let a = try fixture.makeQueue()
        let b = try fixture.makeQueue()
        async let poll = b.receive(maxMessages: 1, waitTime: .seconds(20), visibilityTimeout: nil)
        try await Task.sleep(for: .milliseconds(300))
        for i in 0..<20 { _ = try await a.send("a\(i)", groupID: "g\(i)", deduplicationID: "a\(i)") }
        let onA = try await a.receive(maxMessages: 10, waitTime: .seconds(5), visibilityTimeout: nil)
        #expect(onA.count == 10)
        #expect(fixture.store.wakeCount(of: b.name) == 0)

        _ = try await b.send("b", groupID: "g", deduplicationID: "b")
        let onB = try await poll
        #expect(onB.map(\.body) == ["b"])
        #expect(fixture.store.wakeCount(of: b.name) <= 1)
    }

    /// Another process sends to A, then to B: each poll wakes once, for its own queue's message.
    @Test func aSendFromAnotherProcessWakesOnlyPollsOnItsQueue() async throws {
        let fixture = try EmbeddedQueueFixture()
        let a = try fixture.makeQueue()
        let b = try fixture.makeQueue()
        let c = try fixture.makeQueue()
        async let pollA = a.receive(maxMessages: 1, waitTime: .seconds(20), visibilityTimeout: nil)
        async let pollB = b.receive(maxMessages: 1, waitTime: .seconds(20), visibilityTimeout: nil)
        async let pollC = c.receive(maxMessages: 1, waitTime: .seconds(3), visibilityTimeout: nil)
        try await Task.sleep(for: .milliseconds(300))

        let helper = try Self.launchHelper(path: fixture.path, queues: [a.name, b.name])
        let (onA, onB, onC) = try await (pollA, pollB, pollC)
        helper.waitUntilExit()
        #expect(helper.terminationStatus == 0)
        #expect(onA.map(\.body) == ["to \(a.name)"])
        #expect(onB.map(\.body) == ["to \(b.name)"])
        #expect(onC.isEmpty)
        #expect(fixture.store.wakeCount(of: a.name) <= 1)
        #expect(fixture.store.wakeCount(of: b.name) <= 1)
        // C's poll waited until its end: nothing woke it.
        #expect(fixture.store.wakeCount(of: c.name) == 0)
    }

    /// A process frozen (`SIGSTOP`) while it holds the write lock of server X's queue file: server Y's round trips
    /// still complete, and X's queues fail after the bounded busy wait instead of hanging.
    @Test func aFrozenProcessHoldingOneServersLockDoesNotStopAnother() async throws {
        let fixture = try EmbeddedQueueFixture()
        for name in ["ts-x-0-req.fifo", "ts-x-0-resp.fifo", "ts-y-0-req.fifo", "ts-y-0-resp.fifo"] {
            try fixture.store.createQueue(name: name)
        }
        let frozenFile = fixture.store.layout.file(ofQueue: "ts-x-0-req.fifo")
        #expect(frozenFile != fixture.store.layout.file(ofQueue: "ts-y-0-req.fifo"))

        let (holder, output) = try Self.launchLockHolder(file: frozenFile)
        defer {
            kill(holder.processIdentifier, SIGKILL)
            holder.waitUntilExit()
        }
        let line = try await Task.detached { output.readData(ofLength: 7) }.value
        try #require(String(decoding: line, as: UTF8.self) == "locked\n")
        kill(holder.processIdentifier, SIGSTOP)

        // A second store, as another server's agent would have, and this one as the backend.
        let agentStore = try fixture.secondStore()
        defer { agentStore.close() }
        let requests = try fixture.store.queue(named: "ts-y-0-req.fifo")
        let agentRequests = try agentStore.queue(named: "ts-y-0-req.fifo")
        let agentResponses = try agentStore.queue(named: "ts-y-0-resp.fifo")
        let responses = try fixture.store.queue(named: "ts-y-0-resp.fifo")
        for round in 0..<5 {
            _ = try await requests.send("request \(round)", groupID: "g", deduplicationID: "q\(round)")
            let requested = try await agentRequests.receive(maxMessages: 1, waitTime: .seconds(10), visibilityTimeout: nil)
            let request = try #require(requested.first)
            _ = try await agentResponses.send("answer to \(request.body)", groupID: "g", deduplicationID: "r\(round)")
            try await agentRequests.delete(receiptHandle: request.receiptHandle)
            let answered = try await responses.receive(maxMessages: 1, waitTime: .seconds(10), visibilityTimeout: nil)
            let response = try #require(answered.first)
            try await responses.delete(receiptHandle: response.receiptHandle)
            #expect(response.body == "answer to request \(round)")
        }

        // The lock is real: X's queue cannot be written while the holder is frozen.
        let frozen = try fixture.store.queue(named: "ts-x-0-req.fifo")
        let error = await #expect(throws: QueueError.self) {
            _ = try await frozen.send("stuck", groupID: "g", deduplicationID: "stuck")
        }
        #expect(error?.code == .storage)
    }

    /// The child half of ``aSendFromAnotherProcessWakesOnlyPollsOnItsQueue()``: sends one message to each queue the
    /// environment names, in order; does nothing in an ordinary test run.
    @Test func sendsToEachQueueWhenLaunchedAsTheIsolationHelper() async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let path = environment[Self.pathVariable], let names = environment[Self.queuesVariable] else { return }
        let store = try EmbeddedQueueStore(path: path)
        defer { store.close() }
        for name in names.split(separator: ",").map(String.init) {
            _ = try await store.queue(named: name).send("to \(name)", groupID: "g", deduplicationID: "helper")
        }
    }

    private static func launchHelper(path: String, queues: [String]) throws -> Process {
        let helper = Process()
        helper.executableURL = URL(
            fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        helper.arguments = [
            "--testing-library", "swift-testing", "--filter", "sendsToEachQueueWhenLaunchedAsTheIsolationHelper",
        ]
        var environment = ProcessInfo.processInfo.environment
        environment[pathVariable] = path
        environment[queuesVariable] = queues.joined(separator: ",")
        helper.environment = environment
        helper.standardOutput = FileHandle.nullDevice
        helper.standardError = FileHandle.nullDevice
        try helper.run()
        return helper
    }

    /// python3's sqlite3 opens `file`, takes its write lock (`BEGIN IMMEDIATE`), prints `locked`, and stops itself.
    private static func launchLockHolder(file: String) throws -> (Process, FileHandle) {
        let script = """
            import os, signal, sqlite3, sys
            connection = sqlite3.connect(sys.argv[1], isolation_level=None)
            connection.execute("BEGIN IMMEDIATE")
            sys.stdout.write("locked\\n")
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGSTOP)
            """
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = ["python3", "-c", script, file]
        let pipe = Pipe()
        holder.standardOutput = pipe
        try holder.run()
        return (holder, pipe.fileHandleForReading)
    }
}
