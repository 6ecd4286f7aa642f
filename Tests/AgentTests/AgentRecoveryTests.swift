import Domain
import Foundation
import TestSupport
import Testing
import Transport
import Wire

/// The agent's side of recovery: epoch fencing, expired requests, and a kill between launching a task and recording
/// it. A real `touchstone-agent` process on the embedded queue, driven by raw protocol messages.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct AgentRecoveryTests {
    typealias Harness = AgentProcessTests.Harness

    static func envelope(
        _ command: Command, channel: Int = 1, epoch: Int64, id: RequestID = .make(), expiresIn: Double = 60
    ) -> RequestEnvelope {
        RequestEnvelope(
            requestID: id, server: Fixtures.gpu1, channel: channel, epoch: epoch, sequence: 1, sentAt: Date(),
            expiresAt: Date().addingTimeInterval(expiresIn), command: command)
    }

    static func lines(_ path: String) -> Int {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").count
    }

    @Test func aRequestOfAnEpochOlderThanTheLastSyncIsRefusedAndNeverExecuted() async throws {
        let harness = try await Harness(server: Fixtures.gpu1)
        let marker = harness.directory.file("runs")
        let sync = Self.envelope(.sync(SyncChannel(epoch: 3, reason: "test")), epoch: 3)
        try await harness.send(WireCoding.encode(sync))
        guard case .synced(let reply) = try await harness.response().body else { Issue.record("no synced"); return }
        #expect(reply.epoch == 3)

        let id = RequestID.make()
        let spec = TaskSpec(command: ["/bin/sh", "-c", "echo run >> \(marker)"])
        let stale = Self.envelope(.startTask(StartTask(taskID: Fixtures.taskA, attempt: 1, spec: spec, backend: "t")), epoch: 2, id: id)
        try await harness.send(WireCoding.encode(stale))
        let refused = try await harness.response()
        guard case .error(let error) = refused.body else { Issue.record("stale request executed: \(refused)"); return }
        #expect(error.code == .staleEpoch)
        #expect(refused.epoch == 2)
        try await Task.sleep(for: .milliseconds(300))
        #expect(Self.lines(marker) == 0)

        // The same request ID in the current epoch runs once; a resend is answered from the journal, stamped with
        // the resend's epoch.
        let current = Self.envelope(.startTask(StartTask(taskID: Fixtures.taskA, attempt: 1, spec: spec, backend: "t")), epoch: 3, id: id)
        try await harness.send(WireCoding.encode(current))
        guard case .taskStarted = try await harness.response().body else { Issue.record("not started"); return }
        let resent = Self.envelope(.startTask(StartTask(taskID: Fixtures.taskA, attempt: 1, spec: spec, backend: "t")), epoch: 4, id: id)
        try await harness.send(WireCoding.encode(resent))
        let answer = try await harness.response()
        #expect(answer.epoch == 4)
        guard case .taskStarted = answer.body else { Issue.record("resend not answered from the journal"); return }
        try await Task.sleep(for: .milliseconds(500))
        #expect(Self.lines(marker) == 1)
        #expect(await harness.stop() == 0)
    }

    /// A stop that overtakes its start (on another channel) leaves a tombstone: the start arriving later never runs,
    /// and a start of a known attempt past its deadline is answered with its report, not `expired` (issue 17 part 2;
    /// the channel model's counterexamples 1 and 4).
    @Test func aStopThatOvertakesItsStartMeansTheStartNeverRuns() async throws {
        let harness = try await Harness(server: Fixtures.gpu1)
        let marker = harness.directory.file("runs")
        let spec = TaskSpec(command: ["/bin/sh", "-c", "echo run >> \(marker)"])
        try await harness.send(
            WireCoding.encode(Self.envelope(.stopTask(StopTask(taskID: Fixtures.taskA, attempt: 1, graceSeconds: 1)), epoch: 0)))
        guard case .taskStopped(let tombstone) = try await harness.response().body else {
            Issue.record("the stop of an unknown attempt was not confirmed")
            return
        }
        #expect(tombstone.state == .stopped)
        #expect(tombstone.startedAt == nil)
        try await harness.send(
            WireCoding.encode(Self.envelope(.startTask(StartTask(taskID: Fixtures.taskA, attempt: 1, spec: spec, backend: "t")), epoch: 0)))
        guard case .taskStarted(let answer) = try await harness.response().body else {
            Issue.record("the late start was not answered with the tombstone")
            return
        }
        #expect(answer.state == .stopped)
        // The same attempt's start again, now past its deadline: answered with the report, not `expired`.
        try await harness.send(
            WireCoding.encode(
                Self.envelope(.startTask(StartTask(taskID: Fixtures.taskA, attempt: 1, spec: spec, backend: "t")), epoch: 0, expiresIn: -5)))
        guard case .taskStarted(let known) = try await harness.response().body else {
            Issue.record("a known attempt's late start was answered with an error")
            return
        }
        #expect(known.state == .stopped)
        try await Task.sleep(for: .milliseconds(300))
        #expect(Self.lines(marker) == 0)
        #expect(await harness.stop() == 0)
    }

    @Test func theEpochSurvivesAnAgentRestart() async throws {
        let harness = try await Harness(server: Fixtures.gpu1)
        try await harness.send(WireCoding.encode(Self.envelope(.sync(SyncChannel(epoch: 5, reason: "t")), epoch: 5)))
        _ = try await harness.response()
        let restarted = try await harness.killAndRestart()
        try await harness.send(WireCoding.encode(Self.envelope(.listTasks, epoch: 4)))
        guard case .error(let error) = try await harness.response().body else { Issue.record("accepted"); return }
        #expect(error.code == .staleEpoch)
        restarted.signal(SIGTERM)
        #expect(await restarted.wait(timeout: .seconds(20)) == 0)
        harness.directory.remove()
    }

    @Test func anExpiredRequestIsAnsweredExpiredAndNeverExecuted() async throws {
        let harness = try await Harness(server: Fixtures.gpu1)
        let marker = harness.directory.file("runs")
        let spec = TaskSpec(command: ["/bin/sh", "-c", "echo run >> \(marker)"])
        let late = Self.envelope(
            .startTask(StartTask(taskID: Fixtures.taskA, attempt: 1, spec: spec, backend: "t")), epoch: 0, expiresIn: -1)
        try await harness.send(WireCoding.encode(late))
        guard case .error(let error) = try await harness.response().body else { Issue.record("executed"); return }
        #expect(error.code == .expired)
        try await Task.sleep(for: .milliseconds(500))
        #expect(Self.lines(marker) == 0)
        #expect(await harness.stop() == 0)
    }

    @Test func anAgentKilledBetweenLaunchingATaskAndRecordingItAdoptsItInsteadOfStartingItAgain() async throws {
        let directory = TemporaryDirectory("agent-crash")
        defer { directory.remove() }
        let store = try EmbeddedQueueStore(path: directory.file("queues.db"))
        for index in 0..<3 {
            let channel = ChannelID(server: Fixtures.gpu1, index: index)
            try store.createQueue(name: ChannelQueues.requestQueue(prefix: "touchstone", channel: channel))
            try store.createQueue(name: ChannelQueues.responseQueue(prefix: "touchstone", channel: channel))
        }
        let channel = ChannelID(server: Fixtures.gpu1, index: 1)
        let requests = try store.queue(named: ChannelQueues.requestQueue(prefix: "touchstone", channel: channel))
        let responses = try store.queue(named: ChannelQueues.responseQueue(prefix: "touchstone", channel: channel))
        let key = try TestKeys.backend(stateDirectory: directory.path)
        let arguments = [
            "--server", "gpu-01", "--queue-path", directory.file("queues.db"), "--workspace", directory.file("workspace"),
            "--poll-wait", "1", "--allow-process-runtime", "--allow-root", "--drain-deadline", "0",
        ]
        let crashing = try ChildProcess(
            builtExecutable("touchstone-agent"), arguments, environment: ["TOUCHSTONE_FAILPOINTS": "agent.after-launch"],
            logDirectory: directory.path, name: "agent-crashing")
        let marker = directory.file("runs")
        let spec = TaskSpec(command: ["/bin/sh", "-c", "echo run >> \(marker); sleep 3"])
        let start = Self.envelope(.startTask(StartTask(taskID: Fixtures.taskA, attempt: 1, spec: spec, backend: "t")), epoch: 0)
        _ = try await requests.send(WireCoding.encodeSigned(start, with: key), groupID: "channel-1", deduplicationID: "first")
        let status = await crashing.wait(timeout: .seconds(20))
        #expect(status == SIGKILL, "the failpoint did not fire: \(crashing.stderr)")
        #expect(crashing.stderr.contains("failpoint agent.after-launch"))

        // The request was never answered nor deleted: after its visibility timeout, the restarted agent takes it
        // again. It must find the running process by its labels, not launch a second one.
        let restarted = try ChildProcess(
            builtExecutable("touchstone-agent"), arguments, logDirectory: directory.path, name: "agent-restarted")
        defer { restarted.signal(SIGTERM) }
        var resend = start
        resend.sentAt = Date()  // a backend's resend is a new message with the same request ID
        _ = try await requests.send(WireCoding.encodeSigned(resend, with: key), groupID: "channel-1", deduplicationID: "resend")
        var report: TaskStatusReport?
        let deadline = ContinuousClock.now + .seconds(60)
        while report == nil, ContinuousClock.now < deadline {
            guard let message = try await responses.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: nil).first
            else { continue }
            try await responses.delete(receiptHandle: message.receiptHandle)
            if case .taskStarted(let started) = try WireCoding.decodeResponse(message.body).body { report = started }
        }
        let adopted = try #require(report, "no answer after the restart: \(restarted.stderr)")
        #expect(adopted.state == .running || adopted.state == .exited, "\(adopted)")
        try await Task.sleep(for: .seconds(4))
        #expect(Self.lines(marker) == 1, "the attempt ran \(Self.lines(marker)) times")
        restarted.signal(SIGTERM)
        #expect(await restarted.wait(timeout: .seconds(20)) == 0)
    }
}
