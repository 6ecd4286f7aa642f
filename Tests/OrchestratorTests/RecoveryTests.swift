import Domain
import EventStore
import Foundation
import Logging
import Orchestrator
import Projections
import TestSupport
import Testing
import Transport
import Wire

/// The backend's side of recovery against real agents: desyncs drain and resync a channel, a duplicated delivery
/// never runs anything twice, a backend killed between sending and recording recovers, and cleanup stops labelled
/// tasks the log does not hold while leaving unlabelled processes alone.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct RecoveryTests {
    static func lines(_ path: String) -> Int {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").count
    }

    static func queue(_ cluster: Cluster, _ server: ServerID, _ index: Int, response: Bool) async throws -> EmbeddedQueue {
        let channel = ChannelID(server: server, index: index)
        let name =
            response
            ? ChannelQueues.responseQueue(prefix: "touchstone", channel: channel)
            : ChannelQueues.requestQueue(prefix: "touchstone", channel: channel)
        try await cluster.queues.createQueueIfNeeded(named: name, attributes: QueueAttributes())
        return try cluster.queues.queue(named: name)
    }

    @Test func aResponseForAnotherRequestDrainsBothQueuesBumpsTheEpochAndResyncs() async throws {
        let cluster = try Cluster()
        try await cluster.attach(Fixtures.gpu1, maxTasks: 2)
        try cluster.startAgent(Fixtures.gpu1)
        let stray = try await Self.queue(cluster, Fixtures.gpu1, 0, response: true)
        let marker = cluster.directory.file("runs")
        try await cluster.run { cluster in
            _ = try await cluster.waitUntil { $0.servers[Fixtures.gpu1]?.agentVersion != nil }
            // A response nobody asked for, and one of an older epoch, on the control channel.
            let foreign = ResponseEnvelope(
                requestID: .make(), server: Fixtures.gpu1, channel: 0, epoch: 0, sequence: 99, agentTime: Date(),
                body: .taskList([]))
            let sent = try await stray.send(try cluster.signed(foreign, by: Fixtures.gpu1), groupID: "channel-0", deduplicationID: "stray")
            let control = ChannelID(server: Fixtures.gpu1, index: 0)
            let synced = try await cluster.waitUntil { ($0.channels[control]?.epoch ?? 0) >= 1 }
            #expect((synced.channels[control]?.desyncs ?? 0) >= 1)
            let events = try await cluster.log.store.read(stream: StreamName.channel(control)).map(ReadModels.decode)
            let desync = events.compactMap { if case .channelDesyncDetected(let e) = $0.event { e } else { nil } }.first
            #expect(desync?.reason == "unexpectedRequestID")
            #expect(desync?.receivedRequestID == foreign.requestID)
            let drained = events.compactMap { if case .channelQueuesDrained(let e) = $0.event { e } else { nil } }.first
            #expect(drained?.fromEpoch == 0 && drained?.toEpoch == 1)
            // The stray message is accounted for: rejected when read, or drained.
            let rejected = events.contains { if case .responseRejected(let e) = $0.event { e.messageID == sent.messageID } else { false } }
            let wasDrained = drained?.responses.contains { $0.messageID == sent.messageID } ?? false
            #expect(rejected || wasDrained)
            // After the drain, a `sync` in the new epoch is answered before anything else on the channel.
            _ = try await cluster.waitUntil {
                $0.channels[control]?.lastResponseAt.map { $0 > (events.last?.recordedAt ?? Date()) } ?? false
            }
            let after = try await cluster.log.store.read(stream: StreamName.channel(control)).map(ReadModels.decode)
            let firstRequestAfterDrain = after.drop { if case .channelQueuesDrained = $0.event { false } else { true } }
                .compactMap { if case .requestSent(let e) = $0.event { e } else { nil } }.first
            #expect(firstRequestAfterDrain?.command == "sync")
            #expect(firstRequestAfterDrain?.epoch == 1)

            // The server keeps working in the new epoch.
            try await cluster.submit("tsk-0000000aa001", "echo run >> \(marker)")
            _ = try await cluster.waitUntil { $0.tasks[TaskID(rawValue: "tsk-0000000aa001")]?.status == .succeeded }
        }
        #expect(Self.lines(marker) == 1)
        #expect(try await cluster.log.verifyReadModels().mismatched.isEmpty)
    }

    /// A second answer to a request the backend already matched (the agent answered a redelivery from its journal)
    /// is a duplicate, logged as rejected, and never a desync (issue 10: a late answer is not a desync).
    @Test func aDuplicatedStartDeliveryRunsTheTaskOnceAndTheLateAnswerIsADuplicateNotADesync() async throws {
        let cluster = try Cluster()
        // Control plus one task channel, so every start and the late answer share channel 1.
        try await cluster.attach(Fixtures.gpu1, maxTasks: 1, channels: 2)
        try cluster.startAgent(Fixtures.gpu1, channels: 2)
        let requests = try await Self.queue(cluster, Fixtures.gpu1, 1, response: false)
        let directory = cluster.directory
        try await cluster.run { cluster in
            let first = try await cluster.submit("tsk-0000000bb000", "echo run >> \(directory.file("runs-0")); sleep 0.3")
            let row = try await cluster.waitUntil { $0.tasks[first]?.status == .succeeded }.tasks[first]!
            // Deliver the same start again (same request ID, new deduplication ID): the agent answers from its
            // journal, and that answer reaches the backend when it already waits for another request.
            let spec = try #require(try await cluster.log.store.read(stream: StreamName.task(first)).map(ReadModels.decode).compactMap {
                if case .taskSubmitted(let e) = $0.event { e.spec } else { nil }
            }.first)
            let duplicate = RequestEnvelope(
                requestID: try #require(row.requestID), server: Fixtures.gpu1, channel: 1, epoch: 0, sequence: 1,
                sentAt: Date(), expiresAt: Date().addingTimeInterval(60),
                command: .startTask(StartTask(taskID: first, attempt: 1, spec: spec, backend: "touchstone")))
            _ = try await requests.send(try cluster.signed(duplicate), groupID: "channel-1", deduplicationID: "dup")
            try await Task.sleep(for: .seconds(1))
            for index in 1...3 {
                try await cluster.submit("tsk-0000000bb00\(index)", "echo run >> \(directory.file("runs-\(index)"))")
            }
            _ = try await cluster.waitUntil { snapshot in
                (1...3).allSatisfy { snapshot.tasks[TaskID(rawValue: "tsk-0000000bb00\($0)")]?.status == .succeeded }
            }
            let channel = ChannelID(server: Fixtures.gpu1, index: 1)
            let events = try await cluster.log.store.read(stream: StreamName.channel(channel)).map(ReadModels.decode)
            #expect(events.contains { if case .responseRejected(let e) = $0.event { e.requestID == row.requestID && e.reason == "duplicate" } else { false } })
            #expect(!events.contains { if case .channelDesyncDetected = $0.event { true } else { false } })
        }
        for index in 0...3 { #expect(Self.lines(directory.file("runs-\(index)")) == 1, "task \(index)") }
        try await cluster.verifyNoOverBooking()
    }

    @Test func anUnrecognisedLabelledTaskIsStoppedAndAnUnlabelledProcessIsLeftAlone() async throws {
        let cluster = try Cluster()
        try await cluster.attach(Fixtures.gpu1, maxTasks: 1)
        try cluster.startAgent(Fixtures.gpu1)
        let requests = try await Self.queue(cluster, Fixtures.gpu1, 2, response: false)
        let responses = try await Self.queue(cluster, Fixtures.gpu1, 2, response: true)
        // A labelled task the log has never heard of (left behind by a backend whose log was lost, say).
        let orphan = TaskID(rawValue: "tsk-00000000dead")
        let start = RequestEnvelope(
            requestID: .make(), server: Fixtures.gpu1, channel: 2, epoch: 0, sequence: 1, sentAt: Date(),
            expiresAt: Date().addingTimeInterval(60),
            command: .startTask(StartTask(taskID: orphan, attempt: 1, spec: TaskSpec(command: ["/bin/sh", "-c", "sleep 60"]), backend: "touchstone")))
        _ = try await requests.send(try cluster.signed(start), groupID: "channel-2", deduplicationID: "orphan")
        var pid: Int32?
        for _ in 0..<100 where pid == nil {
            if let message = try await responses.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: nil).first {
                try await responses.delete(receiptHandle: message.receiptHandle)
                if case .taskStarted(let report) = try WireCoding.decodeResponse(message.body).body { pid = report.pid }
            }
        }
        let orphanPID = try #require(pid)
        // An engineer's own process on the same host.
        let own = Process()
        own.executableURL = URL(fileURLWithPath: "/bin/sleep")
        own.arguments = ["60"]
        try own.run()
        defer { own.terminate() }

        try await cluster.run { cluster in
            let found = try await cluster.waitUntil(timeout: .seconds(30)) { _ in kill(orphanPID, 0) != 0 }
            _ = found
            let events = try await cluster.log.store.read(stream: StreamName.server(Fixtures.gpu1)).map(ReadModels.decode)
            let cleaned = events.compactMap { if case .unrecognisedTaskFound(let e) = $0.event { e } else { nil } }
            #expect(cleaned.map(\.taskID) == [orphan])
            #expect(cleaned.first?.reason == "no such task in the log")
        }
        #expect(own.isRunning, "cleanup touched an unlabelled process")
    }

    @Test func aBackendKilledBetweenSendingAStartAndRecordingItRecoversAndRunsTheTaskOnce() async throws {
        let directory = TemporaryDirectory("backend-crash")
        defer { directory.remove() }
        let state = directory.file("state")
        let touchstone = try builtExecutable("touchstone")
        func cli(_ arguments: [String]) async throws {
            // `--state-dir` after the subcommand's words, before any `--`.
            let process = try ChildProcess(
                touchstone, Array(arguments.prefix(2)) + ["--state-dir", state] + arguments.dropFirst(2),
                logDirectory: directory.path, name: "cli")
            #expect(await process.wait() == 0, "\(arguments): \(process.stderr)")
        }
        try await cli(["server", "attach", "gpu-01", "--max-tasks", "1"])
        let marker = directory.file("runs")
        try await cli(["task", "submit", "--name", "once", "--", "/bin/sh", "-c", "echo run >> \(marker)"])
        let agent = try ChildProcess(
            builtExecutable("touchstone-agent"),
            ["--server", "gpu-01", "--queue-path", state + "/queues.db", "--workspace", directory.file("agent"),
             "--poll-wait", "1", "--allow-process-runtime", "--allow-root", "--drain-deadline", "0"],
            logDirectory: directory.path, name: "agent")
        defer { agent.signal(SIGTERM) }
        let serveArguments = ["serve", "--state-dir", state, "--status-interval", "0.2", "--request-timeout", "20"]
        let crashing = try ChildProcess(
            touchstone, serveArguments, environment: ["TOUCHSTONE_FAILPOINTS": "backend.after-send:startTask"],
            logDirectory: directory.path, name: "serve-crashing")
        #expect(await crashing.wait(timeout: .seconds(60)) == SIGKILL, "\(crashing.stderr)")
        #expect(crashing.stderr.contains("failpoint backend.after-send"))
        let log = try TouchstoneLog(path: state + "/touchstone.db")
        let before = try await log.snapshot().tasks.rows.values.first
        // `task.start-sending` was recorded, then the send, but not `channel.request.sent`: unconfirmed.
        #expect(before?.status == .starting, "the start is unconfirmed")
        let sentBefore = try await log.store.read(after: 0, limit: 1_000, types: ["channel.request.sent"])
        #expect(sentBefore.allSatisfy { !String(decoding: $0.payload, as: UTF8.self).contains("startTask") })

        let serve = try ChildProcess(touchstone, serveArguments, logDirectory: directory.path, name: "serve")
        defer { serve.signal(SIGTERM) }
        var status: TaskStatus?
        for _ in 0..<300 where status != .succeeded {
            status = try await log.snapshot().tasks.rows.values.first?.status
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(status == .succeeded, "serve:\n\(serve.stderr)\nagent:\n\(agent.stderr)")
        try await Task.sleep(for: .milliseconds(500))
        #expect(Self.lines(marker) == 1, "the task ran \(Self.lines(marker)) times")
        #expect(try await log.verifyReadModels().mismatched.isEmpty)
    }

    @Test func aCancelIssuedWhileTheBackendIsDownIsCarriedOutWhenItStarts() async throws {
        let directory = TemporaryDirectory("cancel-while-down")
        defer { directory.remove() }
        let state = directory.file("state")
        let touchstone = try builtExecutable("touchstone")
        @discardableResult
        func cli(_ arguments: [String]) async throws -> String {
            let process = try ChildProcess(
                touchstone, Array(arguments.prefix(2)) + ["--state-dir", state] + arguments.dropFirst(2),
                logDirectory: directory.path, name: "cli")
            #expect(await process.wait() == 0, "\(arguments): \(process.stderr)")
            return process.stdout
        }
        try await cli(["server", "attach", "gpu-01", "--max-tasks", "1"])
        let running = try await cli(["task", "submit", "--name", "long", "--", "/bin/sh", "-c", "sleep 60"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let waiting = try await cli(["task", "submit", "--name", "next", "--", "/bin/sh", "-c", "true"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let agent = try ChildProcess(
            builtExecutable("touchstone-agent"),
            ["--server", "gpu-01", "--queue-path", state + "/queues.db", "--workspace", directory.file("agent"),
             "--poll-wait", "1", "--allow-process-runtime", "--allow-root", "--drain-deadline", "0"],
            logDirectory: directory.path, name: "agent")
        defer { agent.signal(SIGTERM) }
        let serveArguments = ["serve", "--state-dir", state, "--status-interval", "0.2", "--stop-grace", "1"]
        let log = try TouchstoneLog(path: state + "/touchstone.db")
        let first = try ChildProcess(touchstone, serveArguments, logDirectory: directory.path, name: "serve-1")
        var pid: Int32?
        for _ in 0..<300 where pid == nil {
            pid = try await log.snapshot().tasks[TaskID(rawValue: running)].flatMap { $0.status == .running ? $0.pid : nil }
            try await Task.sleep(for: .milliseconds(100))
        }
        let taskPID = try #require(pid, "serve:\n\(first.stderr)")
        first.signal(SIGKILL)
        await first.wait()

        // The backend is down: both cancels are intents in the log. The queued one is cancelled at once.
        #expect(try await cli(["task", "cancel", waiting, "--reason", "not needed"]).contains("cancelled \(waiting)"))
        #expect(try await cli(["task", "cancel", running]).contains("it will be stopped"))
        #expect(kill(taskPID, 0) == 0, "nothing stops the task while the backend is down")

        let second = try ChildProcess(touchstone, serveArguments, logDirectory: directory.path, name: "serve-2")
        defer { second.signal(SIGTERM) }
        var status: TaskStatus?
        for _ in 0..<300 where status != .cancelled {
            status = try await log.snapshot().tasks[TaskID(rawValue: running)]?.status
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(status == .cancelled, "serve:\n\(second.stderr)")
        #expect(kill(taskPID, 0) != 0, "the cancelled task's process still runs")
        let snapshot = try await log.snapshot()
        #expect(snapshot.tasks[TaskID(rawValue: waiting)]?.status == .cancelled)
        #expect(snapshot.tasks[TaskID(rawValue: waiting)]?.attempt == 0, "a cancelled queued task never ran")
        #expect(try await log.verifyReadModels().mismatched.isEmpty)
    }

    @Test func anAgentAheadOfTheBackendsEpochIsResynchronisedAboveIt() async throws {
        let cluster = try Cluster()
        try await cluster.attach(Fixtures.gpu1, maxTasks: 1, channels: 2)
        try cluster.startAgent(Fixtures.gpu1, channels: 2)
        // The agent's channel 1 is at epoch 50 (a log restored from a backup knows only epoch 0).
        let requests = try await Self.queue(cluster, Fixtures.gpu1, 1, response: false)
        let responses = try await Self.queue(cluster, Fixtures.gpu1, 1, response: true)
        let sync = RequestEnvelope(
            requestID: .make(), server: Fixtures.gpu1, channel: 1, epoch: 50, sequence: 1, sentAt: Date(),
            expiresAt: Date().addingTimeInterval(60), command: .sync(SyncChannel(epoch: 50, reason: "test")))
        _ = try await requests.send(try cluster.signed(sync), groupID: "channel-1", deduplicationID: "ahead")
        var synced = false
        for _ in 0..<60 where !synced {
            if let message = try await responses.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: nil).first {
                try await responses.delete(receiptHandle: message.receiptHandle)
                synced = true
            }
        }
        #expect(synced)
        let marker = cluster.directory.file("runs")
        let task = try await cluster.submit("tsk-0000000ee001", "echo run >> \(marker)")
        try await cluster.run { cluster in
            let done = try await cluster.waitUntil { $0.tasks[task]?.status == .succeeded }
            let channel = ChannelID(server: Fixtures.gpu1, index: 1)
            #expect((done.channels[channel]?.epoch ?? 0) > 50)
            let events = try await cluster.log.store.read(stream: StreamName.channel(channel)).map(ReadModels.decode)
            #expect(events.contains { if case .channelDesyncDetected(let e) = $0.event { e.reason == "agentAhead" } else { false } })
            // Refusals are not retried blindly: a handful of requests, not a storm.
            #expect(done.channels[channel]?.requestsSent ?? 0 < 10, "\(done.channels[channel].map { "\($0.requestsSent)" } ?? "-") requests")
        }
        #expect(Self.lines(marker) == 1)
    }
}
