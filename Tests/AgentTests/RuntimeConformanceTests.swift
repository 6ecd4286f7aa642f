@testable import Agent
import Domain
import Foundation
import TestSupport
import Testing
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// The same checks for every ``TaskRuntime``: the process runtime, and the docker runtime against the real `dockerd`
/// that `tools/test` starts (tools/lib/dockerd.sh). Outside `tools/test` the docker cases run when
/// `TOUCHSTONE_DOCKER_SOCKET` is set; under it (`TOUCHSTONE_REQUIRE_DOCKER=1`) a missing engine fails them.
@Suite(.timeLimit(.minutes(2)))
struct RuntimeConformanceTests {
    @Test(arguments: DockerTestEngine.runtimes)
    func runsATaskToItsExitCodeWithItsOutput(kind: RuntimeKind) async throws {
        let harness = try RuntimeHarness(kind)
        defer { harness.directory.remove() }
        let attempt = harness.attempt()
        let spec = harness.spec(
            #"echo "out $TOUCHSTONE_TASK_ID"; echo err >&2; echo done > result.txt; exit 7"#, outputs: ["result.txt"])
        let ended = try await withSupervisedRuntime(harness.makeRuntime()) { runtime, exits in
            let started = try await harness.start(runtime, attempt, spec)
            #expect(started.labels["touchstone.task"] == attempt.taskID.rawValue)
            #expect(started.pid != nil)
            return try await exits.wait(for: attempt)
        }
        #expect(ended.state == .exited)
        #expect(ended.exitCode == 7)
        #expect(ended.outputs["result.txt"] == "done\n")
        #expect(harness.read(attempt, "stdout.log") == "out \(attempt.taskID)\n")
        #expect(harness.read(attempt, "stderr.log") == "err\n")
    }

    @Test(arguments: DockerTestEngine.runtimes)
    func stopsWithGraceWhenTheTaskHandlesSIGTERM(kind: RuntimeKind) async throws {
        let harness = try RuntimeHarness(kind)
        defer { harness.directory.remove() }
        let attempt = harness.attempt()
        let spec = harness.spec(
            #"trap 'echo handled > handled.txt; exit 0' TERM; echo ready > ready.txt; while true; do sleep 0.1; done"#)
        let (ended, elapsed) = try await withSupervisedRuntime(harness.makeRuntime()) { runtime, exits in
            _ = try await harness.start(runtime, attempt, spec)
            try await harness.waitForFile(attempt, "ready.txt")
            let clock = ContinuousClock.now
            #expect(await runtime.stop(attempt, grace: .seconds(20)))
            let ended = try await exits.wait(for: attempt)
            return (ended, ContinuousClock.now - clock)
        }
        #expect(ended.state == .stopped)
        #expect(elapsed < .seconds(10), "the task handled SIGTERM at once; it was not killed after the grace")
        #expect(
            (try? String(contentsOfFile: harness.taskDirectory(attempt) + "/work/handled.txt", encoding: .utf8))
                == "handled\n")
    }

    @Test(arguments: DockerTestEngine.runtimes)
    func stopKillsTheWholeTreeOfATaskThatIgnoresSIGTERM(kind: RuntimeKind) async throws {
        let harness = try RuntimeHarness(kind)
        defer { harness.directory.remove() }
        let attempt = harness.attempt()
        let spec = harness.spec(
            #"trap '' TERM; sleep 300 & echo $! > child.pid; sleep 300 & echo ready > ready.txt; wait"#)
        try await withSupervisedRuntime(harness.makeRuntime()) { runtime, exits in
            _ = try await harness.start(runtime, attempt, spec)
            try await harness.waitForFile(attempt, "ready.txt")
            #expect(await runtime.stop(attempt, grace: .seconds(1)))
            let ended = try await exits.wait(for: attempt)
            #expect(ended.state == .stopped)
            // Nothing of the attempt runs any more: not in the runtime's inventory of the host…
            let left = try await runtime.inventory().filter { $0.key == attempt && $0.state == .running }
            #expect(left.isEmpty)
            #expect(await runtime.runningCount == 0)
            // …and for processes, the child the task started in the background is gone too (a container's children
            // die with its PID namespace).
            if kind == .process {
                let text = try String(contentsOfFile: harness.taskDirectory(attempt) + "/work/child.pid", encoding: .utf8)
                let child = try #require(Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)))
                try await Task.sleep(for: .milliseconds(200))
                #expect(kill(child, 0) != 0 || ProcessStat(pid: child)?.state == "Z")
            }
        }
    }

    @Test(arguments: DockerTestEngine.runtimes)
    func aNewRuntimeInstanceListsAdoptsAndSupervisesARunningTask(kind: RuntimeKind) async throws {
        let harness = try RuntimeHarness(kind)
        defer { harness.directory.remove() }
        let attempt = harness.attempt()
        let spec = harness.spec(
            #"echo ready > ready.txt; while [ ! -e release ]; do sleep 0.1; done; echo bye; exit 5"#)
        let first = harness.makeRuntime()
        let exits = ExitRecorder()
        // The first life of the agent: it starts the task, then goes away.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await first.run { exits.record($0) } }
            let started = try await harness.start(first, attempt, spec)
            try await harness.waitForFile(attempt, "ready.txt")
            #expect(started.state == .running)
            if kind == .docker {
                // A container outlives the agent: cancelling the supervisor leaves it running.
                group.cancelAll()
            } else {
                // A process in its own session outlives the agent too; this test process must stay its parent (to
                // reap it), so the first supervisor keeps running and is ended below.
                first.finish()
            }
            // The second life: a new instance finds the task by its labels alone, and adopts it.
            let restarted = harness.makeRuntime()
            try await withSupervisedRuntime(restarted) { runtime, restartedExits in
                let found = try await runtime.inventory()
                let entry = try #require(found.first { $0.key == attempt }, "\(kind): inventory lacks the task: \(found)")
                #expect(entry.state == .running)
                #expect(entry.labels["touchstone.backend"] == "tests")
                #expect(entry.labels["touchstone.request"] != nil)
                #expect(entry.labels["touchstone.directory"] == harness.taskDirectory(attempt))
                let adopted = try await runtime.adopt(entry)
                #expect(adopted.state == .running)
                #expect(await runtime.runningCount == 1)
                harness.touch(attempt, "release")
                let ended = try await restartedExits.wait(for: attempt)
                #expect(ended.state == .exited)
                #expect(ended.exitCode == 5)
                #expect(await runtime.runningCount == 0)
            }
            try await group.waitForAll()
        }
    }

    @Test(arguments: DockerTestEngine.runtimes)
    func anAdoptedTaskCanBeStopped(kind: RuntimeKind) async throws {
        let harness = try RuntimeHarness(kind)
        defer { harness.directory.remove() }
        let attempt = harness.attempt()
        let spec = harness.spec(#"echo ready > ready.txt; while true; do sleep 0.1; done"#)
        let first = harness.makeRuntime()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await first.run { _ in } }
            _ = try await harness.start(first, attempt, spec)
            try await harness.waitForFile(attempt, "ready.txt")
            if kind == .docker { group.cancelAll() } else { first.finish() }
            try await withSupervisedRuntime(harness.makeRuntime()) { runtime, exits in
                let entry = try #require(try await runtime.inventory().first { $0.key == attempt })
                _ = try await runtime.adopt(entry)
                #expect(await runtime.stop(attempt, grace: .seconds(1)))
                let ended = try await exits.wait(for: attempt)
                #expect(ended.state == .stopped)
                #expect(try await runtime.inventory().filter { $0.key == attempt && $0.state == .running }.isEmpty)
            }
            try await group.waitForAll()
        }
    }

    @Test(arguments: DockerTestEngine.runtimes)
    func unlabelledWorkIsNeitherListedNorStopped(kind: RuntimeKind) async throws {
        let harness = try RuntimeHarness(kind)
        defer { harness.directory.remove() }
        let bystander = try await Bystander(kind: kind, harness: harness)
        let attempt = harness.attempt()
        try await withSupervisedRuntime(harness.makeRuntime()) { runtime, exits in
            _ = try await harness.start(runtime, attempt, harness.spec("echo ready > ready.txt; sleep 300"))
            try await harness.waitForFile(attempt, "ready.txt")
            let listed = try await runtime.inventory()
            #expect(listed.map(\.key) == [attempt], "only the labelled task of this scope is listed")
            // The agent's cleanup: kill everything it runs.
            await runtime.killAll()
            let ended = try await exits.wait(for: attempt)
            #expect(ended.state == .stopped)
        }
        let stillRunning = try await bystander.isRunning()
        await bystander.remove()
        #expect(stillRunning, "\(kind): the unlabelled \(bystander) was touched")
    }

    @Test(arguments: DockerTestEngine.runtimes)
    func aTaskPastItsTimeoutIsStopped(kind: RuntimeKind) async throws {
        let harness = try RuntimeHarness(kind)
        defer { harness.directory.remove() }
        let attempt = harness.attempt()
        let ended = try await withSupervisedRuntime(harness.makeRuntime()) { runtime, exits in
            _ = try await harness.start(runtime, attempt, harness.spec("sleep 30", timeoutSeconds: 1))
            return try await exits.wait(for: attempt, timeout: .seconds(20))
        }
        #expect(ended.state == .exited)
        #expect(ended.reason == "timed out after 1s and was stopped")
        #expect(ended.exitCode != nil && ended.exitCode != 0)
    }

    @Test(arguments: DockerTestEngine.runtimes)
    func aStartOfTheSameAttemptTwiceNeverRunsItTwice(kind: RuntimeKind) async throws {
        let harness = try RuntimeHarness(kind)
        defer { harness.directory.remove() }
        let attempt = harness.attempt()
        let spec = harness.spec("echo ready > ready.txt; sleep 300")
        try await withSupervisedRuntime(harness.makeRuntime()) { runtime, _ in
            _ = try await harness.start(runtime, attempt, spec)
            try await harness.waitForFile(attempt, "ready.txt")
            if kind == .docker {
                // The engine refuses a second container of the same name, even from another runtime instance.
                let again = await harness.makeRuntime().start(
                    attempt, spec: spec, labels: harness.labels(attempt), directory: harness.taskDirectory(attempt))
                #expect(again.state == .failedToStart)
                #expect(again.reason?.contains("conflict") == true, "\(again.reason ?? "")")
            }
            #expect(try await runtime.inventory().filter { $0.key == attempt }.count == 1)
        }
    }
}

/// Work that is not Touchstone's: a container without labels (and one labelled for another server), or a plain
/// process, started outside the runtime.
struct Bystander: CustomStringConvertible, Sendable {
    let kind: RuntimeKind
    let containers: [String]
    let process: ChildProcess?
    let client: DockerClient?

    init(kind: RuntimeKind, harness: RuntimeHarness) async throws {
        self.kind = kind
        if kind == .docker {
            let client = DockerClient(socketPath: try #require(harness.socket))
            let image = try #require(harness.image)
            var ids: [String] = []
            for (name, labels) in [
                ("engineer-\(harness.scope)", [String: String]()),
                ("other-server-\(harness.scope)", ["touchstone.task": "tsk-000000000001", serverLabel: "someone-else"]),
            ] {
                let body = ContainerCreateBody(
                    image: image, command: ["sleep", "300"], environment: [], workingDirectory: "/", labels: labels,
                    hostConfig: .init(
                        binds: [], networkMode: "none", initProcess: true, memory: 0, nanoCPUs: 0, deviceRequests: []))
                let id = try await client.createContainer(name: name, body: body)
                try await client.startContainer(id)
                ids.append(id)
            }
            containers = ids
            process = nil
            self.client = client
        } else {
            containers = []
            process = try ChildProcess("/bin/sleep", ["300"], logDirectory: harness.directory.path, name: "bystander")
            client = nil
        }
    }

    func isRunning() async throws -> Bool {
        if let client {
            for id in containers {
                guard try await client.inspectContainer(id)?.state.running == true else { return false }
            }
            return true
        }
        guard let pid = process?.pid else { return false }
        return kill(pid, 0) == 0 && ProcessStat(pid: pid)?.state != "Z"
    }

    func remove() async {
        process?.signal(SIGKILL)
        _ = await process?.wait(timeout: .seconds(5))
        for id in containers { try? await client?.removeContainer(id) }
    }

    var description: String { kind == .docker ? "containers \(containers)" : "process \(process?.pid ?? 0)" }
}
