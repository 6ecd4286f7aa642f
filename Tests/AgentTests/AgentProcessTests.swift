@preconcurrency import Crypto
import Domain
import Foundation
import TestSupport
import Testing
import Transport
import Wire

/// A real `touchstone-agent` process on the embedded queue, driven by raw protocol messages.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct AgentProcessTests {
    let server = Fixtures.gpu1

    struct Harness {
        let directory: TemporaryDirectory
        let store: EmbeddedQueueStore
        let agent: ChildProcess
        let requests: [EmbeddedQueue]
        let responses: [EmbeddedQueue]
        /// The backend key of the queue file's directory, which the agent trusts by default; `send` signs with it.
        let backendKey: Curve25519.Signing.PrivateKey
        /// The agent's policy flags, for restarts too.
        let policy: [String]
        var sequence: Int64 = 0

        /// - Parameter policy: The agent's policy flags (docs/security.md); the default lets it run tasks as root.
        init(server: ServerID, policy: [String] = ["--allow-process-runtime", "--allow-root"]) async throws {
            self.policy = policy
            directory = TemporaryDirectory("agent")
            backendKey = try TestKeys.backend(stateDirectory: directory.path)
            store = try EmbeddedQueueStore(path: directory.file("queues.db"))
            var requests: [EmbeddedQueue] = []
            var responses: [EmbeddedQueue] = []
            for index in 0..<3 {
                let channel = ChannelID(server: server, index: index)
                let requestName = ChannelQueues.requestQueue(prefix: "touchstone", channel: channel)
                let responseName = ChannelQueues.responseQueue(prefix: "touchstone", channel: channel)
                try store.createQueue(name: requestName)
                try store.createQueue(name: responseName)
                requests.append(try store.queue(named: requestName))
                responses.append(try store.queue(named: responseName))
            }
            self.requests = requests
            self.responses = responses
            agent = try ChildProcess(
                builtExecutable("touchstone-agent"),
                [
                    "--server", server.rawValue, "--queue-path", directory.file("queues.db"), "--workspace",
                    directory.file("workspace"), "--poll-wait", "1", "--drain-deadline", "0",
                ] + policy,
                logDirectory: directory.path, name: "agent")
        }

        mutating func request(_ command: Command, channel: Int = 1, id: RequestID = .make(), expiresIn: Double = 60) -> RequestEnvelope {
            sequence += 1
            return RequestEnvelope(
                requestID: id, server: Fixtures.gpu1, channel: channel, epoch: 0, sequence: sequence, sentAt: Date(),
                expiresAt: Date().addingTimeInterval(expiresIn), command: command)
        }

        /// Signs `text` with the backend key and puts it on a channel's request queue.
        func send(_ text: String, channel: Int = 1, dedup: String = UUID().uuidString) async throws {
            try await sendRaw(TestKeys.sign(text, with: backendKey), channel: channel, dedup: dedup)
        }

        /// Puts `text` on a channel's request queue as it is (a forgery, a copy).
        func sendRaw(_ text: String, channel: Int = 1, dedup: String = UUID().uuidString) async throws {
            _ = try await requests[channel].send(text, groupID: "channel-\(channel)", deduplicationID: dedup)
        }

        /// Receives and deletes the next response on a channel.
        func response(channel: Int = 1, timeout: Duration = .seconds(20)) async throws -> ResponseEnvelope {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if let message = try await responses[channel].receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: nil).first {
                    try await responses[channel].delete(receiptHandle: message.receiptHandle)
                    return try WireCoding.decodeResponse(message.body)
                }
            }
            Issue.record("no response on channel \(channel); agent stderr:\n\(agent.stderr)")
            throw CancellationError()
        }

        /// SIGKILLs the agent (its tasks, in sessions of their own, run on) and starts another on the same queues and
        /// workspace, as a restart after a crash.
        func killAndRestart(server: ServerID = Fixtures.gpu1) async throws -> ChildProcess {
            agent.signal(SIGKILL)
            await agent.wait()
            return try ChildProcess(
                builtExecutable("touchstone-agent"),
                ["--server", server.rawValue, "--queue-path", directory.file("queues.db"), "--workspace",
                 directory.file("workspace"), "--poll-wait", "1", "--drain-deadline", "0"] + policy,
                logDirectory: directory.path, name: "agent-restarted")
        }

        func stop() async -> Int32? {
            agent.signal(SIGTERM)
            let status = await agent.wait(timeout: .seconds(20))
            directory.remove()
            return status
        }
    }

    @Test func answersHelloAndRunsATaskToItsExitCode() async throws {
        var harness = try await Harness(server: server)
        let hello = harness.request(.hello, channel: 0)
        try await harness.send(WireCoding.encode(hello), channel: 0)
        let reply = try await harness.response(channel: 0)
        #expect(reply.requestID == hello.requestID)
        #expect(reply.epoch == 0)
        guard case .hello(let inventory) = reply.body else { Issue.record("\(reply.body)"); return }
        #expect(inventory.tasks.isEmpty)

        let spec = TaskSpec(
            command: ["/bin/sh", "-c", "echo \"$GREETING from $TOUCHSTONE_TASK_ID\" > out.txt; cat input.txt; echo oops >&2; exit 3"],
            environment: ["GREETING": "hello"], files: [WorkingFile(path: "input.txt", contents: Data("from a file\n".utf8))],
            outputs: ["out.txt"])
        let start = harness.request(.startTask(StartTask(taskID: Fixtures.taskA, attempt: 1, spec: spec, backend: "test")))
        try await harness.send(WireCoding.encode(start))
        let started = try await harness.response()
        guard case .taskStarted(let report) = started.body else { Issue.record("\(started.body)"); return }
        #expect(report.labels["touchstone.task"] == Fixtures.taskA.rawValue)
        #expect(report.labels["touchstone.request"] == start.requestID.rawValue)
        #expect(report.labels["touchstone.backend"] == "test")

        var final: TaskStatusReport?
        for _ in 0..<100 where final == nil {
            let list = harness.request(.listTasks, channel: 0)
            try await harness.send(WireCoding.encode(list), channel: 0)
            if case .taskList(let reports) = try await harness.response(channel: 0).body,
                let ended = reports.first(where: { $0.state == .exited })
            {
                final = ended
            } else {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let ended = try #require(final)
        #expect(ended.exitCode == 3)
        #expect(ended.outputs["out.txt"] == "hello from \(Fixtures.taskA)\n")
        let taskDirectory = harness.directory.file("workspace/tasks/\(Fixtures.taskA)/1")
        #expect(try String(contentsOfFile: taskDirectory + "/stdout.log", encoding: .utf8) == "from a file\n")
        #expect(try String(contentsOfFile: taskDirectory + "/stderr.log", encoding: .utf8) == "oops\n")
        #expect(await harness.stop() == 0)
    }

    @Test func aCorruptMessageGetsAnErrorResponseAndTheAgentKeepsPolling() async throws {
        var harness = try await Harness(server: server)
        // Unsigned garbage is refused before it is read; signed garbage (a backend's bug) is a bad request.
        try await harness.sendRaw("this is not a request {", channel: 1)
        let refused = try await harness.response(channel: 1)
        guard case .error(let refusal) = refused.body else { Issue.record("\(refused.body)"); return }
        #expect(refusal.code == .unauthenticated)
        try await harness.send(#"{"this is":"not a request"}"#, channel: 1)
        let error = try await harness.response(channel: 1)
        guard case .error(let wireError) = error.body else { Issue.record("\(error.body)"); return }
        #expect(wireError.code == .badRequest)
        #expect(error.requestID == nil)

        let unknown = harness.request(.hello, channel: 1)
        let text = WireCoding.encode(unknown).replacingOccurrences(of: #""kind":"hello""#, with: #""kind":"rm -rf""#)
        try await harness.send(text, channel: 1)
        let named = try await harness.response(channel: 1)
        #expect(named.requestID == unknown.requestID)
        guard case .error(let unknownError) = named.body else { Issue.record("\(named.body)"); return }
        #expect(unknownError.message.contains("unknown command"))

        let expired = harness.request(.hello, channel: 1, expiresIn: -1)
        try await harness.send(WireCoding.encode(expired), channel: 1)
        guard case .error(let late) = try await harness.response(channel: 1).body else { Issue.record("not expired"); return }
        #expect(late.code == .expired)

        let hello = harness.request(.hello, channel: 1)
        try await harness.send(WireCoding.encode(hello), channel: 1)
        let reply = try await harness.response(channel: 1)
        #expect(reply.requestID == hello.requestID)
        if case .hello = reply.body {} else { Issue.record("hello failed after corrupt input: \(reply.body)") }
        #expect(await harness.stop() == 0)
    }

    @Test func aResentRequestIsAnsweredFromTheJournalAndStartsOneProcess() async throws {
        var harness = try await Harness(server: server)
        let marker = harness.directory.file("runs")
        let spec = TaskSpec(command: ["/bin/sh", "-c", "echo run >> \(marker); sleep 30"])
        let start = harness.request(.startTask(StartTask(taskID: Fixtures.taskB, attempt: 1, spec: spec, backend: "test")))
        let text = WireCoding.encode(start)
        try await harness.send(text, dedup: "first")
        let first = try await harness.response()
        // The same request ID again, with a new deduplication ID (a resend after a backend restart: a new message, with
        // a new sentAt; the very same bytes would be a replay, refused: AgentSigningTests).
        var resend = start
        resend.sentAt = Date()
        try await harness.send(WireCoding.encode(resend), dedup: "second")
        var second = try await harness.response()
        // The recorded answer, stamped with the time it is given again (the backend measures clock skew from it).
        #expect(second.agentTime >= first.agentTime)
        second.agentTime = first.agentTime
        #expect(second == first)
        // Another request for the same (task, attempt) adopts it.
        let again = harness.request(.startTask(StartTask(taskID: Fixtures.taskB, attempt: 1, spec: spec, backend: "test")), channel: 2)
        try await harness.send(WireCoding.encode(again), channel: 2)
        guard case .taskStarted(let adopted) = try await harness.response(channel: 2).body,
            case .taskStarted(let original) = first.body
        else { Issue.record("no start reports"); return }
        #expect(adopted.pid == original.pid)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try String(contentsOfFile: marker, encoding: .utf8) == "run\n")

        // stopTask kills the whole tree (sh and its sleep) within the grace period.
        let stop = harness.request(.stopTask(StopTask(taskID: Fixtures.taskB, attempt: 1, graceSeconds: 1)), channel: 0)
        try await harness.send(WireCoding.encode(stop), channel: 0)
        _ = try await harness.response(channel: 0)
        let pid = try #require(original.pid)
        var alive = true
        for _ in 0..<100 where alive {
            alive = kill(-pid, 0) == 0
            if alive { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(!alive, "the task's process group survived stopTask")
        #expect(await harness.stop() == 0)
    }

    /// Polls `listTasks` until the attempt has a report matching `done`.
    func waitForReport(
        _ harness: inout Harness, _ task: TaskID, _ done: (TaskStatusReport) -> Bool
    ) async throws -> TaskStatusReport? {
        for _ in 0..<150 {
            let list = harness.request(.listTasks, channel: 0)
            try await harness.send(WireCoding.encode(list), channel: 0)
            if case .taskList(let reports) = try await harness.response(channel: 0).body,
                let report = reports.first(where: { $0.taskID == task }), done(report)
            {
                return report
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }

    @Test func aTaskPastItsTimeoutIsStopped() async throws {
        var harness = try await Harness(server: server)
        let spec = TaskSpec(command: ["/bin/sh", "-c", "sleep 30"], timeoutSeconds: 1)
        let start = harness.request(.startTask(StartTask(taskID: Fixtures.taskA, attempt: 1, spec: spec, backend: "test")))
        try await harness.send(WireCoding.encode(start))
        _ = try await harness.response()
        let ended = try #require(try await waitForReport(&harness, Fixtures.taskA) { $0.state != .running })
        #expect(ended.state == .exited)
        #expect(ended.reason == "timed out after 1s and was stopped")
        #expect(ended.exitCode != 0)
        #expect(await harness.stop() == 0)
    }

    @Test func aTaskIDThatIsAPathIsRefused() async throws {
        var harness = try await Harness(server: server)
        let start = harness.request(.startTask(StartTask(taskID: TaskID(rawValue: "../../escaped"), attempt: 1, spec: Fixtures.spec(), backend: "test")))
        try await harness.send(WireCoding.encode(start))
        guard case .error(let error) = try await harness.response().body else { Issue.record("accepted"); return }
        #expect(error.code == .badRequest)
        #expect(!FileManager.default.fileExists(atPath: harness.directory.file("escaped")))
        #expect(await harness.stop() == 0)
    }

    @Test func aRestartedAgentAdoptsARunningTaskAndReportsItsEnd() async throws {
        var harness = try await Harness(server: server)
        let spec = TaskSpec(command: ["/bin/sh", "-c", "sleep 2; echo ok > out.txt"], outputs: ["out.txt"])
        let start = harness.request(.startTask(StartTask(taskID: Fixtures.taskA, attempt: 1, spec: spec, backend: "test")))
        try await harness.send(WireCoding.encode(start))
        _ = try await harness.response()
        let restarted = try await harness.killAndRestart(server: server)
        let ended = try #require(try await waitForReport(&harness, Fixtures.taskA) { $0.state != .running })
        #expect(ended.state == .exited)
        #expect(ended.exitCode == 0)
        #expect(ended.outputs["out.txt"] == "ok\n")
        // The adopted process's end is not a shutdown: a task started afterwards keeps running.
        let next = harness.request(.startTask(StartTask(taskID: Fixtures.taskB, attempt: 1, spec: TaskSpec(command: ["/bin/sh", "-c", "sleep 30"]), backend: "test")))
        try await harness.send(WireCoding.encode(next))
        _ = try await harness.response()
        try await Task.sleep(for: .seconds(1))
        let still = try #require(try await waitForReport(&harness, Fixtures.taskB) { _ in true })
        #expect(still.state == .running, "the agent stopped its tasks after an adopted process ended: \(still)")
        restarted.signal(SIGTERM)
        #expect(await restarted.wait(timeout: .seconds(20)) == 0)
        harness.directory.remove()
    }
}
