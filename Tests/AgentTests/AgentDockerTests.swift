@testable import Agent
@preconcurrency import Crypto
import Domain
import Foundation
import TestSupport
import Testing
import Transport
import Wire

/// A real `touchstone-agent --runtime docker` on the embedded queue, against the `dockerd` that `tools/test` starts.
@Suite(
    .serialized, .timeLimit(.minutes(2)),
    .enabled(if: DockerTestEngine.enabled, "TOUCHSTONE_DOCKER_SOCKET is not set: run tools/test to start dockerd"))
struct AgentDockerTests {
    let server = ServerID(rawValue: "dock-\(UInt16.random(in: 0...UInt16.max))")!

    /// The queues of one agent's channels, and the agent.
    struct Harness {
        let directory = TemporaryDirectory("agent-docker")
        let requests: [EmbeddedQueue]
        let responses: [EmbeddedQueue]
        let server: ServerID
        let socket: String
        var agent: ChildProcess?
        var sequence: Int64 = 0
        /// The backend key the agent trusts (co-located default); requests are signed with it.
        let backendKey: Curve25519.Signing.PrivateKey

        init(server: ServerID) throws {
            self.server = server
            socket = try DockerTestEngine.require().socket
            backendKey = try TestKeys.backend(stateDirectory: directory.path)
            let store = try EmbeddedQueueStore(path: directory.file("queues.db"))
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
        }

        mutating func startAgent(name: String = "agent", defaultImage: String? = nil) throws {
            agent = try ChildProcess(
                builtExecutable("touchstone-agent"),
                [
                    "--server", server.rawValue, "--queue-path", directory.file("queues.db"), "--workspace",
                    directory.file("workspace"), "--poll-wait", "1", "--drain-deadline", "0", "--runtime", "docker", "--allow-root",
                    "--docker-socket", socket, "--allow-image", try DockerTestEngine.require().image,
                ] + (defaultImage.map { ["--default-image", $0] } ?? []),
                logDirectory: directory.path, name: name)
        }

        /// Sends a command and returns its response.
        mutating func call(_ command: Command, channel: Int = 1) async throws -> ResponseBody {
            sequence += 1
            let request = RequestEnvelope(
                requestID: .make(), server: server, channel: channel, epoch: 0, sequence: sequence, sentAt: Date(),
                expiresAt: Date().addingTimeInterval(60), command: command)
            _ = try await requests[channel].send(
                WireCoding.encodeSigned(request, with: backendKey), groupID: "channel-\(channel)",
                deduplicationID: UUID().uuidString)
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                if let message = try await responses[channel].receive(
                    maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: nil
                ).first {
                    try await responses[channel].delete(receiptHandle: message.receiptHandle)
                    let response = try WireCoding.decodeResponse(message.body)
                    if response.requestID == request.requestID { return response.body }
                }
            }
            Issue.record("no response on channel \(channel); agent stderr:\n\(agent?.stderr ?? "")")
            throw CancellationError()
        }

        /// Polls `listTasks` until the attempt's report matches `done`.
        mutating func waitForReport(_ task: TaskID, _ done: (TaskStatusReport) -> Bool) async throws -> TaskStatusReport {
            for _ in 0..<200 {
                if case .taskList(let reports) = try await call(.listTasks, channel: 0),
                    let report = reports.first(where: { $0.taskID == task }), done(report)
                {
                    return report
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            Issue.record("no matching report for \(task); agent stderr:\n\(agent?.stderr ?? "")")
            throw CancellationError()
        }
    }

    @Test func runsATaskInAContainerAndAdoptsItAfterTheAgentIsKilled() async throws {
        var harness = try Harness(server: server)
        defer { harness.directory.remove() }
        let image = try DockerTestEngine.require().image
        try harness.startAgent()
        let spec = TaskSpec(
            command: ["sh", "-c", "cat input.txt; while [ ! -e release ]; do sleep 0.1; done; echo ok > out.txt; exit 3"],
            files: [WorkingFile(path: "input.txt", contents: Data("from a file\n".utf8))], outputs: ["out.txt"],
            image: image)
        let task = TaskID.random()
        guard case .taskStarted(let started) = try await harness.call(
            .startTask(StartTask(taskID: task, attempt: 1, spec: spec, backend: "test")))
        else { Issue.record("not started"); return }
        #expect(started.state == .running, "\(started.reason ?? "")")
        #expect(started.labels["touchstone.backend"] == "test")

        // The agent dies; its container does not.
        harness.agent?.signal(SIGKILL)
        _ = await harness.agent?.wait()
        let client = DockerClient(socketPath: harness.socket)
        let name = "touchstone-\(server)-\(task)-1"
        #expect(try await client.inspectContainer(name)?.state.running == true)

        // The next life of the agent adopts the container and reports its end.
        try harness.startAgent(name: "agent-restarted")
        let adopted = try await harness.waitForReport(task) { _ in true }
        #expect(adopted.state == .running)
        _ = FileManager.default.createFile(
            atPath: harness.directory.file("workspace/tasks/\(task)/1/work/release"), contents: Data())
        let ended = try await harness.waitForReport(task) { $0.state != .running }
        #expect(ended.state == .exited)
        #expect(ended.exitCode == 3)
        #expect(ended.outputs["out.txt"] == "ok\n")
        let taskDirectory = harness.directory.file("workspace/tasks/\(task)/1")
        #expect(try String(contentsOfFile: taskDirectory + "/stdout.log", encoding: .utf8) == "from a file\n")
        // Its container is removed once its end is recorded.
        var gone = false
        for _ in 0..<50 where !gone {
            gone = try await client.inspectContainer(name) == nil
            if !gone { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(gone)
        harness.agent?.signal(SIGTERM)
        #expect(await harness.agent?.wait(timeout: .seconds(20)) == 0)
    }

    @Test func aContainerThatEndedWhileTheAgentWasDownIsReportedWithItsExitCode() async throws {
        var harness = try Harness(server: server)
        defer { harness.directory.remove() }
        let image = try DockerTestEngine.require().image
        try harness.startAgent()
        let spec = TaskSpec(
            command: ["sh", "-c", "while [ ! -e release ]; do sleep 0.1; done; echo done > out.txt; echo bye; exit 4"],
            outputs: ["out.txt"], image: image)
        let task = TaskID.random()
        guard case .taskStarted(let started) = try await harness.call(
            .startTask(StartTask(taskID: task, attempt: 1, spec: spec, backend: "test")))
        else { Issue.record("not started"); return }
        #expect(started.state == .running, "\(started.reason ?? "")")
        harness.agent?.signal(SIGKILL)
        _ = await harness.agent?.wait()
        // The task ends while no agent runs.
        let client = DockerClient(socketPath: harness.socket)
        let name = "touchstone-\(server)-\(task)-1"
        _ = FileManager.default.createFile(
            atPath: harness.directory.file("workspace/tasks/\(task)/1/work/release"), contents: Data())
        var exited = false
        for _ in 0..<100 where !exited {
            exited = try await client.inspectContainer(name)?.state.running == false
            if !exited { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(exited)
        try harness.startAgent(name: "agent-restarted")
        let ended = try await harness.waitForReport(task) { $0.state != .running }
        #expect(ended.state == .exited)
        #expect(ended.exitCode == 4)
        #expect(ended.outputs["out.txt"] == "done\n")
        let taskDirectory = harness.directory.file("workspace/tasks/\(task)/1")
        #expect(try String(contentsOfFile: taskDirectory + "/stdout.log", encoding: .utf8) == "bye\n")
        #expect(try await client.inspectContainer(name) == nil, "the ended container was removed")
        harness.agent?.signal(SIGTERM)
        #expect(await harness.agent?.wait(timeout: .seconds(20)) == 0)
    }

    /// The agent and its container are killed together and the container is gone when the next agent starts (a host
    /// reboot that took it with it): the attempt is reported ended with neither an exit code nor a signal, which the
    /// backend takes as `lost`, an infrastructure failure it retries (issue 17 part 4; `Reconciler.vanished`).
    @Test func aContainerKilledWithItsAgentIsReportedWithoutAnExitCode() async throws {
        var harness = try Harness(server: server)
        defer { harness.directory.remove() }
        let image = try DockerTestEngine.require().image
        try harness.startAgent()
        let task = TaskID.random()
        guard case .taskStarted(let started) = try await harness.call(
            .startTask(StartTask(taskID: task, attempt: 1, spec: TaskSpec(command: ["sleep", "60"], image: image), backend: "test")))
        else { Issue.record("not started"); return }
        #expect(started.state == .running, "\(started.reason ?? "")")
        harness.agent?.signal(SIGKILL)
        _ = await harness.agent?.wait()
        let client = DockerClient(socketPath: harness.socket)
        try await client.removeContainer("touchstone-\(server)-\(task)-1")
        try harness.startAgent(name: "agent-restarted")
        let ended = try await harness.waitForReport(task) { $0.state != .running }
        #expect(ended.state == .exited)
        #expect(ended.exitCode == nil)
        #expect(ended.signal == nil)
        harness.agent?.signal(SIGTERM)
        #expect(await harness.agent?.wait(timeout: .seconds(20)) == 0)
    }

    @Test func aTaskWithoutAnImageFailsToStartWhenTheAgentHasNoDefault() async throws {
        var harness = try Harness(server: server)
        defer { harness.directory.remove() }
        try harness.startAgent()
        let task = TaskID.random()
        guard case .taskStarted(let report) = try await harness.call(
            .startTask(StartTask(taskID: task, attempt: 1, spec: TaskSpec(command: ["true"]), backend: "test")))
        else { Issue.record("no start report"); return }
        #expect(report.state == .failedToStart)
        #expect(report.reason?.contains("--default-image") == true)
        harness.agent?.signal(SIGTERM)
        #expect(await harness.agent?.wait(timeout: .seconds(20)) == 0)
    }

    @Test func anAgentThatCannotReachDockerDoesNotStart() async throws {
        let directory = TemporaryDirectory("agent-nodocker")
        defer { directory.remove() }
        // The server is attached (its queues exist), so the agent gets as far as asking its runtime.
        let store = try EmbeddedQueueStore(path: directory.file("queues.db"))
        for index in 0..<3 {
            let channel = ChannelID(server: server, index: index)
            try store.createQueue(name: ChannelQueues.requestQueue(prefix: "touchstone", channel: channel))
            try store.createQueue(name: ChannelQueues.responseQueue(prefix: "touchstone", channel: channel))
        }
        _ = try TestKeys.backend(stateDirectory: directory.path)
        // A journaled running attempt needs the runtime's answer: without Docker the agent must not guess.
        let agent = try ChildProcess(
            builtExecutable("touchstone-agent"),
            [
                "--server", server.rawValue, "--queue-path", directory.file("queues.db"), "--workspace",
                directory.file("workspace"), "--poll-wait", "1", "--drain-deadline", "0", "--runtime", "docker", "--allow-root",
                "--docker-socket", directory.file("no-such.sock"),
            ],
            logDirectory: directory.path, name: "agent")
        let status = await agent.wait(timeout: .seconds(30))
        #expect(status != nil && status != 0)
        #expect(agent.stderr.contains("cannot reach Docker"), "\(agent.stderr)")
    }
}
