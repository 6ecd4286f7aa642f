import Foundation
import TestSupport
import Testing

/// Issue 16, "a user's first week": the real `touchstone` and `touchstone-agent` binaries as a new user runs them.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct FirstWeekTests {
    let directory = TemporaryDirectory("firstweek")
    var state: String { directory.file("state") }

    func touchstone(_ arguments: String...) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await touchstone(arguments)
    }

    func touchstone(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await runToCompletion(
            builtExecutable("touchstone"), arguments,
            environment: ["TOUCHSTONE_STATE_DIR": state], directory: directory.path)
    }

    func agentArguments(server: String = "gpu-01", workspace: String = "workspace") -> [String] {
        [
            "--server", server, "--queue-path", state + "/queues.db", "--workspace", directory.file(workspace),
            "--poll-wait", "1", "--allow-process-runtime", "--allow-root", "--drain-deadline", "0", "--no-cgroups",
        ]
    }

    func agent(_ arguments: [String], environment: [String: String] = [:]) async throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        try await runToCompletion(
            builtExecutable("touchstone-agent"), arguments, environment: environment, directory: directory.path)
    }

    /// Waits until a child's stderr holds `text` (its log line), up to 20 s.
    func waitFor(_ text: String, in child: ChildProcess) async throws {
        for _ in 0..<400 where !child.stderr.contains(text) {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(child.stderr.contains(text), "\(child.stderr)")
    }

    func submit(_ arguments: String...) async throws -> String {
        let result = try await touchstone(["task", "submit"] + arguments)
        #expect(result.status == 0, "\(result.stderr)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func json(_ text: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    }

    // MARK: 1. One agent per workspace

    @Test func aSecondAgentOnTheSameWorkspaceRefusesToStartNamingTheHolder() async throws {
        #expect(try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1").status == 0)
        let first = try ChildProcess(
            builtExecutable("touchstone-agent"), agentArguments(), logDirectory: directory.path, name: "agent-1")
        defer { first.signal(SIGKILL) }
        try await waitFor("agent ready", in: first)
        let second = try await agent(agentArguments())
        #expect(second.status != 0)
        #expect(second.stderr.contains("another agent (pid \(first.pid)) is running on the workspace"), "\(second.stderr)")
        #expect(second.stderr.split(separator: "\n").count == 1, "\(second.stderr)")
        // The first agent is untouched, and stops cleanly.
        first.signal(SIGTERM)
        #expect(await first.wait(timeout: .seconds(20)) == 0)
        // Once it is gone, the workspace is free again.
        let third = try ChildProcess(
            builtExecutable("touchstone-agent"), agentArguments(), logDirectory: directory.path, name: "agent-3")
        try await waitFor("agent ready", in: third)
        third.signal(SIGTERM)
        #expect(await third.wait(timeout: .seconds(20)) == 0)
    }

    /// Polls `check` every 100 ms for up to 30 s (the CLI reads the log; nothing to await across processes here).
    func eventually(_ what: String, _ check: () async throws -> Bool) async throws {
        for _ in 0..<300 {
            if try await check() { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("never: \(what)")
    }

    func instanceEvents() async throws -> [[String: Any]] {
        let result = try await touchstone("events", "--type", "server.agent-instance", "--format", "json")
        return (try json(result.stdout) as? [[String: Any]]) ?? []
    }

    func taskStatus(_ id: String) async throws -> (status: String?, attempt: Int?) {
        let shown = try json(try await touchstone("task", "show", id, "--format", "json").stdout) as? [String: Any]
        let task = shown?["task"] as? [String: Any]
        return (task?["status"] as? String, task?["attempt"] as? Int)
    }

    @Test func aSecondAgentForTheSameServerIsFencedAndTheFirstKeepsItsTask() async throws {
        #expect(try await touchstone("server", "attach", "gpu-01", "--max-tasks", "2").status == 0)
        let serve = try ChildProcess(
            builtExecutable("touchstone"), ["serve", "--state-dir", state, "--status-interval", "0.2"],
            logDirectory: directory.path, name: "serve")
        let first = try ChildProcess(
            builtExecutable("touchstone-agent"), agentArguments(workspace: "ws-a"), logDirectory: directory.path,
            name: "agent-a")
        var restarted: ChildProcess?
        defer {
            serve.signal(SIGTERM)
            first.signal(SIGKILL)
            restarted?.signal(SIGKILL)
        }
        let id = try await submit("--", "/bin/sh", "-c", "sleep 60")
        try await eventually("the task runs") { try await taskStatus(id).status == "running" }
        let adopted = try await instanceEvents()
        #expect(adopted.compactMap { ($0["payload"] as? [String: Any])?["reason"] as? String } == ["first"])
        let known = (adopted.first?["payload"] as? [String: Any])?["instance"] as? String
        #expect(first.stderr.contains(known ?? "-"), "the agent logs its instance: \(first.stderr)")

        // A second agent for gpu-01 on another workspace: fenced at its first request, exits non-zero, runs nothing.
        // It holds the first one's keys (a cloned machine image, say): with a key of its own its answers would not
        // even be read (badSignature, SigningEndToEndTests), and only a signed notice is logged as a conflict.
        try FileManager.default.createDirectory(atPath: directory.file("ws-b"), withIntermediateDirectories: true)
        for key in ["agent.key", "agent.key.pub", "agent.seal.key", "agent.seal.key.pub"] {
            try FileManager.default.copyItem(atPath: directory.file("ws-a/" + key), toPath: directory.file("ws-b/" + key))
            chmod(directory.file("ws-b/" + key), key.hasSuffix(".pub") ? 0o644 : 0o600)
        }
        let second = try ChildProcess(
            builtExecutable("touchstone-agent"), agentArguments(workspace: "ws-b"), logDirectory: directory.path,
            name: "agent-b")
        let status = await second.wait(timeout: .seconds(60))
        #expect(status != nil && status != 0, "\(second.stderr)")
        #expect(second.stderr.contains("is fenced: server gpu-01's requests are addressed to agent instance \(known ?? "-")"),
            "\(second.stderr)")
        try await eventually("the backend logged the conflict") {
            try await instanceEvents().contains { $0["type"] as? String == "server.agent-instance-fenced" }
        }
        let fenced = try #require(try await instanceEvents().first { $0["type"] as? String == "server.agent-instance-fenced" })
        #expect((fenced["payload"] as? [String: Any])?["known"] as? String == known)
        // The first agent keeps its task: the same attempt, still running, never moved.
        #expect(try await taskStatus(id) == ("running", 1))
        let server = try json(try await touchstone("server", "show", "gpu-01", "--format", "json").stdout) as? [String: Any]
        #expect((server?["server"] as? [String: Any] ?? server)?["agentInstance"] as? String == known, "\(String(describing: server))")

        // A restart of the first agent in its own workspace is the same agent: adopted, and its task with it.
        first.signal(SIGKILL)
        _ = await first.wait(timeout: .seconds(10))
        restarted = try ChildProcess(
            builtExecutable("touchstone-agent"), agentArguments(workspace: "ws-a"), logDirectory: directory.path,
            name: "agent-a2")
        try await eventually("the restarted agent is adopted") {
            try await instanceEvents().contains { ($0["payload"] as? [String: Any])?["reason"] as? String == "restarted" }
        }
        #expect(try await taskStatus(id) == ("running", 1))
        #expect(try await touchstone("task", "cancel", id).status == 0)
        try await eventually("the task is cancelled") { try await taskStatus(id).status == "cancelled" }
    }

    @Test func aCleanServeRestartIsNotAnIncident() async throws {
        #expect(try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1").status == 0)
        let before = try await touchstone("server", "list")
        #expect(before.stdout.contains("backend down: no backend has served this state directory yet"), "\(before.stdout)")
        let agentProcess = try ChildProcess(
            builtExecutable("touchstone-agent"), agentArguments(), logDirectory: directory.path, name: "agent")
        var serve = try ChildProcess(
            builtExecutable("touchstone"), ["serve", "--state-dir", state, "--status-interval", "0.2"],
            logDirectory: directory.path, name: "serve-1")
        defer {
            serve.signal(SIGTERM)
            agentProcess.signal(SIGTERM)
        }
        try await eventually("the backend runs") { !(try await touchstone("server", "list").stdout.contains("backend down")) }
        let first = try await submit("--", "true")
        #expect(try await touchstone("task", "wait", first).status == 0)

        // A clean stop: a stopped line, and an event that says since when.
        serve.signal(SIGTERM)
        #expect(await serve.wait(timeout: .seconds(30)) == 0)
        #expect(serve.stderr.contains("backend stopped"), "\(serve.stderr)")
        let down = try await touchstone("server", "list")
        #expect(down.stdout.contains("backend down since \(Render2.isoYear())"), "\(down.stdout)")
        #expect(down.stdout.contains("stopped cleanly"), "\(down.stdout)")
        let queued = try await touchstone("task", "submit", "--", "true")
        #expect(queued.status == 0)
        #expect(queued.stderr.contains("queued, but no backend is running: backend down since"), "\(queued.stderr)")
        let second = queued.stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        // The next start picks up where the last left: the queued task runs, and no channel fell out of sync.
        serve = try ChildProcess(
            builtExecutable("touchstone"), ["serve", "--state-dir", state, "--status-interval", "0.2"],
            logDirectory: directory.path, name: "serve-2")
        let waited = try await touchstone("task", "wait", second)
        #expect(waited.status == 0, "\(waited.stdout)\(waited.stderr)\n\(serve.stderr)")
        let third = try await submit("--", "true")
        #expect(try await touchstone("task", "wait", third).status == 0)
        #expect(!(try await touchstone("server", "list").stdout.contains("backend down")))
        let incidents = try await touchstone("events", "--type", "channel.desync", "--format", "json")
        #expect((try json(incidents.stdout) as? [Any])?.isEmpty == true, "\(incidents.stdout)")
        let drains = try await touchstone("events", "--type", "channel.queues-drained", "--format", "json")
        #expect((try json(drains.stdout) as? [Any])?.isEmpty == true, "\(drains.stdout)")
        // Times inside payloads are ISO 8601 too, as everywhere in the CLI's output.
        let sent = try json(try await touchstone("events", "--type", "channel.request.sent", "--tail", "1", "--format", "json").stdout) as? [[String: Any]]
        let expiresAt = (sent?.first?["payload"] as? [String: Any])?["expiresAt"] as? String
        #expect(expiresAt.flatMap { ISO8601DateFormatter.withFraction.date(from: $0) } != nil, "\(String(describing: sent))")
        let lifecycle = try json(try await touchstone("events", "--type", "backend.", "--format", "json").stdout) as? [[String: Any]]
        #expect(lifecycle?.compactMap { $0["type"] as? String } == ["backend.started", "backend.stopped", "backend.started"])
    }

    @Test func aDetachedServerIsNoLongerPolled() async throws {
        #expect(try await touchstone("server", "attach", "gpu-07", "--max-tasks", "1").status == 0)
        let serve = try ChildProcess(
            builtExecutable("touchstone"),
            ["serve", "--state-dir", state, "--heartbeat-timeout", "0.3", "--missed-heartbeats", "1"],
            logDirectory: directory.path, name: "serve")
        defer { serve.signal(SIGTERM) }
        func sent() async throws -> Int {
            let result = try await touchstone("events", "--stream", "channel/gpu-07/0", "--type", "channel.request.sent", "--format", "json")
            // The stream does not exist before the first request: an error, not an empty list.
            guard result.status == 0 else { return 0 }
            return (try json(result.stdout) as? [Any])?.count ?? 0
        }
        // No agent: the backend keeps asking.
        try await eventually("the backend polls gpu-07") { try await sent() >= 2 }
        #expect(try await touchstone("server", "detach", "gpu-07").status == 0)
        try await eventually("the detach is recorded") {
            try await touchstone("server", "show", "gpu-07").stdout.contains("detached since")
        }
        try await Task.sleep(for: .seconds(1))
        let after = try await sent()
        try await Task.sleep(for: .seconds(3))
        #expect(try await sent() == after, "a detached server is still polled")
        #expect(serve.stderr.contains("server unlinked: detached"), "\(serve.stderr)")
        // While it had no agent, silence was a desync once (when it went unreachable), not at every poll.
        let desyncs = try json(try await touchstone("events", "--type", "channel.desync", "--format", "json").stdout) as? [Any]
        #expect(desyncs?.count == 1, "\(String(describing: desyncs))")
    }

    @Test func submitRefusesWhatWouldCrashOrNeverEnd() async throws {
        #expect(try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1").status == 0)
        for (arguments, message) in [
            (["--timeout", "9223372036854775807"], "--timeout 9223372036854775807 is out of range: 1 to 31622400 seconds"),
            (["--timeout", "0"], "--timeout 0 is out of range"),
            (["--input", "/dev/zero:d"], "--input /dev/zero is not a regular file"),
            (["--name", String(repeating: "n", count: 201)], "--name is 201 characters long: at most 200"),
        ] {
            let result = try await touchstone(["task", "submit"] + arguments + ["--", "true"])
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
        // Nothing was written for them: no task, no imported input.
        let listed = try json(try await touchstone("task", "list", "--format", "json").stdout) as? [Any]
        #expect(listed?.isEmpty == true)
        // logs --attempt of a task that never ran is an error, not a crash.
        let queued = try await submit("--", "true")
        let logs = try await touchstone("task", "logs", queued, "--attempt", "1")
        #expect(logs.status == 1, "\(logs.stderr)")
        #expect(logs.stderr.contains("has no attempt 1: it has not run yet"), "\(logs.stderr)")
    }

    @Test func aReattachSaysWhichLabelsItDropsAndALabelHasOneValue() async throws {
        #expect(try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1", "--label", "gpu=a100").status == 0)
        let again = try await touchstone("server", "attach", "gpu-01", "--max-tasks", "2")
        #expect(again.status == 0)
        #expect(again.stderr.contains("note: labels dropped: gpu=a100"), "\(again.stderr)")
        let twice = try await touchstone("server", "attach", "gpu-01", "--max-tasks", "2", "--label", "gpu=a100", "--label", "gpu=h100")
        #expect(twice.status != 0)
        #expect(twice.stderr.contains("--label gpu is given twice"), "\(twice.stderr)")
    }

    // MARK: 2. Refuse early

    @Test func anAgentStartedBeforeItsServerIsAttachedSaysHowToAttachIt() async throws {
        let result = try await agent(agentArguments())
        #expect(result.status != 0)
        #expect(result.stderr.contains("server gpu-01 is not attached"), "\(result.stderr)")
        #expect(result.stderr.contains("touchstone server attach gpu-01"), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: state + "/queues.db"), "the agent created the queue file")
    }

    @Test func anAgentForAServerThatIsNotAttachedExitsInsteadOfPollingForever() async throws {
        #expect(try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1").status == 0)
        let result = try await agent(agentArguments(server: "gpu-09"))
        #expect(result.status != 0)
        #expect(result.stderr.contains("server gpu-09 is not attached"), "\(result.stderr)")
        #expect(result.stderr.contains("touchstone server attach gpu-09"), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
    }

    /// The same refusal on SQS (QueueDoesNotExist), against the ministack that `tools/test` starts on loopback.
    @Test(
        .enabled(
            if: ProcessInfo.processInfo.environment["TOUCHSTONE_SQS_ENDPOINT"] != nil
                || ProcessInfo.processInfo.environment["TOUCHSTONE_REQUIRE_SQS"] == "1",
            "TOUCHSTONE_SQS_ENDPOINT is not set: run tools/test to start ministack"))
    func anAgentOnSQSWhoseQueuesDoNotExistSaysHowToAttach() async throws {
        let environment = ProcessInfo.processInfo.environment
        let endpoint = try #require(environment["TOUCHSTONE_SQS_ENDPOINT"])
        let sqs = [
            "TOUCHSTONE_SQS_ENDPOINT": endpoint, "TOUCHSTONE_SQS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": environment["TOUCHSTONE_SQS_ACCESS_KEY_ID"] ?? "",
            "AWS_SECRET_ACCESS_KEY": environment["TOUCHSTONE_SQS_SECRET_ACCESS_KEY"] ?? "",
        ]
        let prefix = "fw\(UInt32.random(in: 0...UInt32.max))"
        let result = try await agent(
            ["--transport", "sqs", "--queue-prefix", prefix, "--server", "gpu-07", "--workspace", directory.file("ws")],
            environment: sqs)
        #expect(result.status != 0)
        #expect(result.stderr.contains("server gpu-07 is not attached (queue \(prefix)-gpu-07-0-req.fifo does not exist)"), "\(result.stderr)")
        #expect(result.stderr.contains("touchstone server attach gpu-07"))
    }

    // MARK: 4. Versions

    @Test func bothBinariesPrintTheSameVersion() async throws {
        let cli = try await touchstone("--version")
        let agentVersion = try await agent(["--version"])
        #expect(cli.status == 0)
        #expect(agentVersion.status == 0)
        let version = cli.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(version.split(separator: ".").count == 3, "\(cli.stdout)")
        #expect(agentVersion.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == version)
    }

    // MARK: 3. task submit refuses what cannot work

    @Test func anUnknownOptionBeforeTheTerminatorIsAnErrorWithASuggestion() async throws {
        #expect(try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1").status == 0)
        let before = try await touchstone("events", "--count").stdout
        let gpu = try await touchstone("task", "submit", "--gpu", "1", "--", "true")
        #expect(gpu.status != 0)
        #expect(gpu.stderr.contains("unknown option --gpu for `task submit`; did you mean --gpus?"), "\(gpu.stderr)")
        #expect(gpu.stderr.split(separator: "\n").count == 1)
        let noTerminator = try await touchstone("task", "submit", "--name", "x", "python3", "train.py")
        #expect(noTerminator.status != 0)
        #expect(noTerminator.stderr.contains("put the command after --"), "\(noTerminator.stderr)")
        let equals = try await touchstone("task", "submit", "--prority=3", "--", "true")
        #expect(equals.stderr.contains("unknown option --prority for `task submit`; did you mean --priority?"), "\(equals.stderr)")
        #expect(try await touchstone("events", "--count").stdout == before, "a refused submit wrote an event")
        // After --, option-looking words belong to the command.
        let id = try await submit("--gpus", "0", "--", "python3", "train.py", "--gpu", "1")
        let shown = try json(try await touchstone("task", "show", id, "--format", "json").stdout) as? [String: Any]
        #expect((shown?["task"] as? [String: Any])?["command"] as? [String] == ["python3", "train.py", "--gpu", "1"])
    }

    @Test func aStartRequestOverTheMessageLimitIsRefusedAtSubmit() async throws {
        #expect(try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1").status == 0)
        // 1.2 MB of environment, as ten values (one argv string may not exceed 128 KiB on Linux).
        let value = String(repeating: "x", count: 120_000)
        let envs = (0..<10).flatMap { ["--env", "BIG\($0)=\(value)"] }
        let big = try await touchstone(["task", "submit"] + envs + ["--", "true"])
        #expect(big.status != 0)
        #expect(big.stderr.contains("over the transport's limit of 1048576 bytes"), "\(big.stderr)")
        #expect(big.stderr.contains("--input"))
        #expect(big.stderr.split(separator: "\n").count == 1)
        #expect(try await touchstone("task", "list", "--format", "json").stdout.contains("tsk-") == false)
        // Just under the limit is fine.
        let fits = try await touchstone(["task", "submit"] + envs.prefix(16) + ["--", "true"])
        #expect(fits.status == 0, "\(fits.stderr)")
    }

    @Test func aDirectoryAsInputIsRefusedInOneLine() async throws {
        #expect(try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1").status == 0)
        let data = directory.file("dataset")
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let result = try await touchstone("task", "submit", "--input", "\(data):data", "--", "true")
        #expect(result.status != 0)
        #expect(result.stderr.contains("--input \(data) is a directory"), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
    }

    // MARK: 5. One word for a task's status; JSON rows carry every field

    @Test func statusIsOneWordAndJSONRowsCarryEveryField() async throws {
        #expect(try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1").status == 0)
        let first = try await submit("--name", "a", "--", "true")
        _ = try await touchstone("task", "cancel", first)
        let second = try await submit("--name", "b", "--", "true")
        let table = try await touchstone("task", "list")
        #expect(table.stdout.hasPrefix("TASK"))
        #expect(table.stdout.split(separator: "\n").first?.contains("STATUS") == true, "\(table.stdout)")
        let rows = try json(try await touchstone("task", "list", "--format", "json").stdout) as? [[String: Any]]
        let row = try #require(rows?.first { $0["taskID"] as? String == second })
        #expect(row["status"] as? String == "queued")
        for key in ["serverID", "exitCode", "startedAt", "finishedAt", "pid", "reason", "failureClass"] {
            #expect(row.keys.contains(key), "missing \(key)")
            #expect(row[key] is NSNull, "\(key) is \(row[key] as Any)")
        }
        let both = try json(
            try await touchstone("task", "list", "--status", "queued", "--status", "cancelled", "--format", "json").stdout)
            as? [[String: Any]]
        #expect(Set(both?.compactMap { $0["taskID"] as? String } ?? []) == [first, second])
        let one = try json(try await touchstone("task", "list", "--status", "cancelled", "--format", "json").stdout)
            as? [[String: Any]]
        #expect(one?.compactMap { $0["taskID"] as? String } == [first])
        let unknown = try await touchstone("task", "list", "--status", "finished")
        #expect(unknown.status != 0)
        #expect(
            unknown.stderr.contains(
                "valid: queued, dispatching, starting, running, succeeded, failed, cancelled, lost"), "\(unknown.stderr)")
        #expect(unknown.stderr.split(separator: "\n").count == 1)
        let shown = try await touchstone("task", "show", second)
        #expect(shown.stdout.contains("status      queued"))
    }

    // MARK: 6. events

    @Test func eventsPrintPayloadObjectsAndFilterByTypeTimeServerAndTask() async throws {
        #expect(try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1").status == 0)
        #expect(try await touchstone("server", "attach", "gpu-02", "--max-tasks", "1").status == 0)
        let id = try await submit("--name", "e", "--", "true")
        _ = try await touchstone("task", "cancel", id, "--reason", "test")

        let all = try json(try await touchstone("events", "--format", "json").stdout) as? [[String: Any]]
        #expect(all?.count == 4)
        let submitted = try #require(all?.first { $0["type"] as? String == "task.submitted" })
        let payload = try #require(submitted["payload"] as? [String: Any], "payload is not an object")
        #expect(payload["taskID"] as? String == id)
        #expect((submitted["recordedAt"] as? String).flatMap { ISO8601DateFormatter.withFraction.date(from: $0) } != nil)
        #expect(submitted.keys.contains("correlationID"))

        let tasks = try json(try await touchstone("events", "--type", "task.", "--format", "json").stdout) as? [[String: Any]]
        #expect(tasks?.compactMap { $0["type"] as? String } == ["task.submitted", "task.cancel-requested"])
        let byTask = try await touchstone("events", "--task", String(id.prefix(8)), "--format", "json")
        #expect((try json(byTask.stdout) as? [Any])?.count == 2, "\(byTask.stderr)")
        let byServer = try json(try await touchstone("events", "--server", "gpu-02", "--format", "json").stdout) as? [[String: Any]]
        #expect(byServer?.compactMap { $0["stream"] as? String } == ["server/gpu-02"])
        let recent = try json(try await touchstone("events", "--since", "10m", "--format", "json").stdout) as? [Any]
        #expect(recent?.count == 4)
        let future = try json(try await touchstone("events", "--since", "2999-01-01T00:00:00Z", "--format", "json").stdout) as? [Any]
        #expect(future?.isEmpty == true)
        let past = try json(try await touchstone("events", "--until", "1h", "--format", "json").stdout) as? [Any]
        #expect(past?.isEmpty == true)
        // The newest events by default and with --tail.
        let last = try await touchstone("events", "--tail", "1")
        #expect(last.stdout.contains("task.cancel-requested"))
        #expect(last.stdout.split(separator: "\n").count == 1)
        #expect(last.stdout.contains(Render2.isoYear()), "times are ISO 8601: \(last.stdout)")

        for (arguments, message) in [
            (["--stream", "task/tsk-ffffffffffff"], "unknown stream"), (["--server", "gpu-09"], "unknown server"),
            (["--task", "tsk-fff"], "unknown task"), (["--since", "yesterday"], "--since takes an ISO 8601 time"),
        ] {
            let result = try await touchstone(["events"] + arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
    }

    // MARK: 7, 8, 9, 12. A real backend and agent: wait, prefixes, fetch, logs --attempt, pins

    @Test func waitPrefixesFetchAndLogsAgainstARealBackend() async throws {
        #expect(try await touchstone("server", "attach", "gpu-01", "--max-tasks", "2", "--label", "gpu=a100").status == 0)
        let serve = try ChildProcess(
            builtExecutable("touchstone"), ["serve", "--state-dir", state, "--status-interval", "0.2"],
            logDirectory: directory.path, name: "serve")
        let agentProcess = try ChildProcess(
            builtExecutable("touchstone-agent"), agentArguments(), logDirectory: directory.path, name: "agent")
        defer {
            serve.signal(SIGTERM)
            agentProcess.signal(SIGTERM)
        }
        let good = try await submit("--output", "out.txt", "--", "/bin/sh", "-c", "echo hello > out.txt; echo line")
        let bad = try await submit("--", "/bin/sh", "-c", "exit 3")
        let pinned = try await submit("--server", "gpu-01", "--constraint", "gpu=a100", "--", "true")

        // 7. wait: the task's exit code, or 1 when any of several did not succeed.
        let waitGood = try await touchstone("task", "wait", String(good.prefix(9)))
        #expect(waitGood.status == 0, "\(waitGood.stderr)\nserve: \(serve.stderr)\nagent: \(agentProcess.stderr)")
        #expect(waitGood.stdout.contains("\(good) succeeded (exit 0)"))
        let waitBad = try await touchstone("task", "wait", bad)
        #expect(waitBad.status == 3, "\(waitBad.stdout)\(waitBad.stderr)")
        let waitBoth = try await touchstone("task", "wait", good, bad, pinned)
        #expect(waitBoth.status == 1)
        #expect(try await touchstone("task", "wait", pinned).status == 0)

        // list --limit and --sort.
        let limited = try json(try await touchstone("task", "list", "--limit", "1", "--format", "json").stdout) as? [[String: Any]]
        #expect(limited?.compactMap { $0["taskID"] as? String } == [pinned])
        let sorted = try await touchstone("task", "list", "--sort", "status")
        let order = sorted.stdout.split(separator: "\n").dropFirst().map { String($0.prefix(16)) }
        #expect(order.last == bad, "\(sorted.stdout)")

        // 12. The pin and the constraint are in the task's row.
        let shown = try json(try await touchstone("task", "show", pinned, "--format", "json").stdout) as? [String: Any]
        let task = shown?["task"] as? [String: Any]
        #expect(task?["pinnedServer"] as? String == "gpu-01")
        #expect(task?["constraints"] as? [String: String] == ["gpu": "a100"])
        let servers = try json(try await touchstone("server", "list", "--format", "json").stdout) as? [[String: Any]]
        #expect(servers?.first?["labels"] as? [String: String] == ["gpu": "a100"])

        // 9. fetch never overwrites without --force, and names why it cannot write.
        var artifacts = try await touchstone("task", "artifacts", good)
        for _ in 0..<100 where !artifacts.stdout.contains("out.txt") {
            try await Task.sleep(for: .milliseconds(100))
            artifacts = try await touchstone("task", "artifacts", good)
        }
        let target = directory.file("out.txt")
        try Data("mine\n".utf8).write(to: URL(fileURLWithPath: target))
        let refused = try await touchstone("task", "fetch", good, "out.txt", "--to", target)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("exists: pass --force to overwrite it"), "\(refused.stderr)")
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "mine\n")
        let forced = try await touchstone("task", "fetch", good, "out.txt", "--to", target, "--force")
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "hello\n")
        let intoDirectory = try await touchstone("task", "fetch", good, "out.txt", "--to", directory.file("nowhere/x/y"))
        #expect(intoDirectory.status != 0)
        #expect(intoDirectory.stderr.contains("cannot write \(directory.file("nowhere/x/y")): No such file or directory"), "\(intoDirectory.stderr)")

        // 10. A declared output the task did not write is named by task show and task artifacts.
        let absent = try await submit("--output", "nothere.json", "--output", "out.txt", "--", "/bin/sh", "-c", "echo x > out.txt")
        #expect(try await touchstone("task", "wait", absent).status == 0)
        try await eventually("the missing output is known") {
            let shown = try json(try await touchstone("task", "show", absent, "--format", "json").stdout) as? [String: Any]
            return ((shown?["missingOutputs"] as? [[String: Any]])?.compactMap { $0["path"] as? String }) == ["nothere.json"]
        }
        let listed = try await touchstone("task", "artifacts", absent)
        #expect(listed.stdout.contains("missing: nothere.json (attempt 1): notFound"), "\(listed.stdout)")
        #expect(listed.stdout.contains("out.txt"))
        let shownTable = try await touchstone("task", "show", absent)
        #expect(shownTable.stdout.contains("missing     nothere.json"), "\(shownTable.stdout)")

        // 9. logs --attempt of an attempt that does not exist.
        let noAttempt = try await touchstone("task", "logs", good, "--attempt", "2")
        #expect(noAttempt.status != 0)
        #expect(noAttempt.stderr.contains("has no attempt 2: its attempts are 1–1"), "\(noAttempt.stderr)")
        #expect(try await touchstone("task", "logs", good, "--attempt", "1").status == 0)

        serve.signal(SIGTERM)
        agentProcess.signal(SIGTERM)
        #expect(await serve.wait(timeout: .seconds(20)) == 0)
        #expect(await agentProcess.wait(timeout: .seconds(20)) == 0)
    }

    @Test func anAmbiguousPrefixListsTheMatches() async throws {
        #expect(try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1").status == 0)
        var ids: [String] = []
        for _ in 0..<3 { ids.append(try await submit("--", "true")) }
        let ambiguous = try await touchstone("task", "show", "tsk-")
        #expect(ambiguous.status != 0)
        #expect(ambiguous.stderr.contains("is ambiguous: it matches 3 tasks"), "\(ambiguous.stderr)")
        for id in ids { #expect(ambiguous.stderr.contains(id)) }
        // Without the tsk- prefix too.
        let unique = try await touchstone("task", "show", String(ids[0].dropFirst(4)), "--format", "json")
        #expect(unique.status == 0, "\(unique.stderr)")
        let cancelled = try await touchstone("task", "cancel", String(ids[1].prefix(12)))
        #expect(cancelled.stdout.contains("cancelled \(ids[1])"), "\(cancelled.stderr)")
    }

    // MARK: 10. Hostnames as server names

    @Test func hostnamesAreServerNamesAndTheirQueuesWork() async throws {
        let attach = try await touchstone("server", "attach", "dgx1.lab.example.com", "--max-tasks", "1")
        #expect(attach.status == 0, "\(attach.stderr)")
        let agentProcess = try ChildProcess(
            builtExecutable("touchstone-agent"), agentArguments(server: "dgx1.lab.example.com"),
            logDirectory: directory.path, name: "agent-dotted")
        defer { agentProcess.signal(SIGKILL) }
        try await waitFor("agent ready", in: agentProcess)
        agentProcess.signal(SIGTERM)
        #expect(await agentProcess.wait(timeout: .seconds(20)) == 0)
        for bad in ["gpu_01", "-gpu", "gpu.", "a..b", "gpu 1"] {
            let result = try await touchstone("server", "attach", bad, "--max-tasks", "1")
            #expect(result.status != 0, "\(bad) was accepted")
        }
    }

    // MARK: 11. Help and tables

    @Test func helpShowsTheCommandsOwnOptionsFirstAndTransportOptionsApart() async throws {
        let submitHelp = try await touchstone("task", "submit", "--help").stdout
        let name = try #require(submitHelp.range(of: "--name"))
        let stateDir = try #require(submitHelp.range(of: "--state-dir"))
        #expect(name.lowerBound < stateDir.lowerBound)
        #expect(!submitHelp.contains("--sqs-region"), "task submit does not use the transport")
        let serveHelp = try await touchstone("serve", "--help").stdout
        let backend = try #require(serveHelp.range(of: "BACKEND OPTIONS:"))
        let transport = try #require(serveHelp.range(of: "TRANSPORT OPTIONS:"), "\(serveHelp)")
        let sqs = try #require(serveHelp.range(of: "--sqs-region"))
        #expect(backend.lowerBound < transport.lowerBound)
        #expect(transport.lowerBound < sqs.lowerBound)
        let attachHelp = try await touchstone("server", "attach", "--help").stdout
        #expect(attachHelp.contains("TRANSPORT OPTIONS:"))
        #expect(try #require(attachHelp.range(of: "--max-tasks")).lowerBound < (attachHelp.range(of: "TRANSPORT OPTIONS:")?.lowerBound ?? attachHelp.startIndex))
    }

    @Test func tablesAlignWideCharactersAndQuoteCommands() async throws {
        #expect(try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1").status == 0)
        _ = try await submit("--name", "学習モデル", "--", "python3", "-c", "print('hi there')")
        _ = try await submit("--name", "🚀rocket", "--", "true")
        _ = try await submit("--name", "plain", "--", "echo", "")
        let table = try await touchstone("task", "list")
        #expect(!table.stdout.contains("\u{FFFD}"))
        let lines = table.stdout.split(separator: "\n").map(String.init)
        // The STATUS column starts at the same display column on every line.
        let columns = lines.map { line -> Int in
            let prefix = line[..<(line.range(of: "queued")?.lowerBound ?? line.range(of: "STATUS")!.lowerBound)]
            return prefix.reduce(0) { $0 + (($1.unicodeScalars.first!.value >= 0x1100) ? 2 : 1) }
        }
        #expect(Set(columns).count == 1, "\(table.stdout)")
        #expect(table.stdout.contains("python3 -c 'print('\\''hi there'\\'')'"), "\(table.stdout)")
        #expect(table.stdout.contains("echo ''"))
    }
}

extension ISO8601DateFormatter {
    nonisolated(unsafe) static let withFraction: ISO8601DateFormatter = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }()
}

enum Render2 {
    /// This year as the ISO 8601 prefix of a time, e.g. `2026-`.
    static func isoYear() -> String { "\(Calendar(identifier: .gregorian).component(.year, from: Date()))-" }
}
