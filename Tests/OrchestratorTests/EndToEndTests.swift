import Domain
import EventStore
import Foundation
import Logging
import Orchestrator
import Projections
import ServiceLifecycle
import TestSupport
import Testing
import Transport
import Wire

/// The backend in this process; real `touchstone-agent` processes running real child processes; one SQLite log and
/// one embedded queue file shared between them.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct EndToEndTests {
    @Test func tasksRunOnRealAgentsWithinCapacityAndTheLogExplainsEverything() async throws {
        let directory = TemporaryDirectory("e2e")
        defer { directory.remove() }
        let log = try TouchstoneLog(path: directory.file("touchstone.db"))
        let queues = try EmbeddedQueueStore(path: directory.file("queues.db"))
        let operatorMeta = EventMetadata(actor: "operator:test")
        try await log.append(.serverAttached(ServerAttached(serverID: Fixtures.gpu1, maxTasks: 2, channels: 3)), metadata: operatorMeta)
        try await log.append(.serverAttached(ServerAttached(serverID: Fixtures.gpu2, maxTasks: 1, channels: 3)), metadata: operatorMeta)
        // As `server attach` does: the agents refuse to start without their queues.
        for server in [Fixtures.gpu1, Fixtures.gpu2] {
            for index in 0..<3 {
                let channel = ChannelID(server: server, index: index)
                try queues.createQueue(name: ChannelQueues.requestQueue(prefix: "touchstone", channel: channel))
                try queues.createQueue(name: ChannelQueues.responseQueue(prefix: "touchstone", channel: channel))
            }
        }

        var submitted: [TaskID: TaskSpec] = [:]
        for index in 0..<5 {
            let id = TaskID(rawValue: String(format: "tsk-00000000e2e%d", index))
            let spec = TaskSpec(
                name: "t\(index)",
                command: ["/bin/sh", "-c", "sleep 0.$((RANDOM % 5 + 3)) 2>/dev/null || sleep 1; echo \"{\\\"index\\\": \(index)}\" > result.json; exit \(index == 3 ? 7 : 0)"],
                outputs: ["result.json"])
            submitted[id] = spec
            try await log.append(.taskSubmitted(TaskSubmitted(taskID: id, spec: spec)), expectedVersion: .noStream, metadata: operatorMeta)
        }

        // As `touchstone serve` does: the backend's key in its state directory, which the co-located agents trust.
        var configuration = BackendConfiguration(statusInterval: .milliseconds(200), requestTimeout: .seconds(20))
        configuration.keys = try BackendKeys(stateDirectory: directory.path, log: log)
        let agents = try [Fixtures.gpu1, Fixtures.gpu2].map { server in
            try ChildProcess(
                builtExecutable("touchstone-agent"),
                [
                    "--server", server.rawValue, "--queue-path", directory.file("queues.db"), "--workspace",
                    directory.file("agents/\(server)"), "--poll-wait", "2", "--allow-process-runtime", "--allow-root",
                ],
                logDirectory: directory.path, name: "agent-\(server)")
        }
        let backend = Backend(
            log: log, queues: queues,
            configuration: configuration, logger: Logger(label: "test.backend"))
        let services = ServiceGroup(configuration: .init(services: [backend], logger: Logger(label: "test.group")))

        let outcome = try await withThrowingTaskGroup(of: (TaskBoard, [ServerID: Int])?.self) { group in
            group.addTask {
                try await services.run()
                return nil
            }
            group.addTask {
                let deadline = ContinuousClock.now + .seconds(90)
                var maxBooked: [ServerID: Int] = [:]
                while ContinuousClock.now < deadline {
                    let snapshot = try await log.snapshot()
                    for row in snapshot.servers.rows.values {
                        maxBooked[row.serverID] = max(maxBooked[row.serverID] ?? 0, row.booked.count)
                        // Invariant 1, checked while the tasks run.
                        #expect(row.booked.count <= row.maxTasks, "\(row.serverID) booked \(row.booked.count) > \(row.maxTasks)")
                    }
                    if snapshot.tasks.rows.count == 5, snapshot.tasks.rows.values.allSatisfy({ $0.status.isTerminal }) {
                        return (snapshot.tasks, maxBooked)
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
                return nil
            }
            var outcome: (TaskBoard, [ServerID: Int])?
            for try await result in group {
                if let result { outcome = result }
                await services.triggerGracefulShutdown()
            }
            return outcome
        }
        for agent in agents { agent.signal(SIGTERM) }
        for agent in agents { #expect(await agent.wait(timeout: .seconds(20)) == 0, "agent stderr: \(agent.stderr)") }

        let (board, maxBooked) = try #require(outcome, "tasks did not all end; agent logs: \(agents.map(\.stderr))")
        for (id, _) in submitted {
            let row = try #require(board[id])
            let index = Int(String(id.rawValue.last!))!
            if index == 3 {
                #expect(row.status == .failed)
                #expect(row.exitCode == 7)
                #expect(row.failureClass == .user)
            } else {
                #expect(row.status == .succeeded, "\(id): \(row.reason ?? "")")
                #expect(row.exitCode == 0)
            }
            #expect(row.outputs["result.json"] == "{\"index\": \(index)}\n")
            #expect(row.attempt == 1)
            #expect(row.pid != nil)
        }
        // Both servers were used, neither past its limit.
        #expect(maxBooked[Fixtures.gpu1, default: 0] >= 1 && maxBooked[Fixtures.gpu1, default: 0] <= 2)
        #expect(maxBooked[Fixtures.gpu2, default: 0] == 1)

        // Every request got its response, and each task's history is in the log.
        let snapshot = try await log.snapshot()
        for row in snapshot.channels.rows.values where row.requestsSent > 0 {
            #expect(row.responsesReceived >= row.requestsSent - 1, "\(row.channel)")
        }
        for id in submitted.keys {
            let types = try await log.store.read(stream: StreamName.task(id)).map(\.type)
            #expect(
                types == ["task.submitted", "task.dispatched", "task.start-sending", "task.started", "task.finished"],
                "\(id): \(types)")
        }
        let starts = try await log.store.read(after: 0, limit: 10_000, types: ["channel.request.sent"])
            .map { try ReadModels.decode($0) }
            .filter { if case .requestSent(let e) = $0.event { return e.command == "startTask" } else { return false } }
        #expect(starts.count == 5)
        // Invariants 5 and 6.
        #expect(try await log.verifyReadModels().mismatched == [])
        #expect(try await log.store.verifyChain() > 0)
    }
}
