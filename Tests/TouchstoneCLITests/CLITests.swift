import Foundation
import TestSupport
import Testing

/// The `touchstone` binary as an operator runs it.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct CLITests {
    let directory = TemporaryDirectory("cli")
    var state: String { directory.file("state") }

    func touchstone(_ arguments: String...) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await runToCompletion(
            builtExecutable("touchstone"), Array(arguments),
            environment: ["TOUCHSTONE_STATE_DIR": state], directory: directory.path)
    }

    func eventCount() async throws -> String {
        try await touchstone("events", "--count").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func attachSubmitListAndShow() async throws {
        let attach = try await touchstone("server", "attach", "gpu-01", "--max-tasks", "2")
        #expect(attach.status == 0, "\(attach.stderr)")
        #expect(attach.stdout == "attached gpu-01: max-tasks 2, 3 channels\n")
        let list = try await touchstone("server", "list", "--format", "json")
        let servers = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]]
        #expect(servers?.first?["serverID"] as? String == "gpu-01")
        #expect(servers?.first?["maxTasks"] as? Int == 2)

        let file = directory.file("train.py")
        try Data("print('hi')\n".utf8).write(to: URL(fileURLWithPath: file))
        let submit = try await touchstone(
            "task", "submit", "--name", "demo", "--env", "A=1", "--file", "\(file):src/train.py", "--gpus", "1", "--output", "m.json",
            "--", "python3", "src/train.py", "--lr", "0.1")
        #expect(submit.status == 0, "\(submit.stderr)")
        let id = submit.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.hasPrefix("tsk-"))

        let tasks = try await touchstone("task", "list")
        #expect(tasks.stdout.contains(id))
        #expect(tasks.stdout.contains("queued"))
        #expect(tasks.stdout.contains("python3 src/train.py --lr 0.1"))

        let show = try await touchstone("task", "show", id, "--format", "json")
        let shown = try JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as? [String: Any]
        let task = shown?["task"] as? [String: Any]
        #expect(task?["gpus"] as? Int == 1)
        #expect((shown?["events"] as? [[String: Any]])?.map { $0["type"] as? String } == ["task.submitted"])

        let events = try await touchstone("events", "--stream", "task/\(id)")
        #expect(events.stdout.contains("task.submitted"))
        #expect(try await eventCount() == "2")
        #expect(try await touchstone("audit", "verify").stdout.contains("chain_ok=true events=2 rebuild_equal=true"))

        // As of position 1 the task did not exist yet; as of 2 it is queued.
        let before = try await touchstone("replay", "--at", "1", "--format", "json")
        let early = try JSONSerialization.jsonObject(with: Data(before.stdout.utf8)) as? [String: Any]
        #expect((early?["tasks"] as? [Any])?.isEmpty == true)
        #expect((early?["servers"] as? [Any])?.count == 1)
        let after = try await touchstone("replay", "--at", "2", "--task", id)
        #expect(after.stdout.contains("\(id)  queued"))
        let channel = try await touchstone("debug", "channel", "gpu-01/0")
        #expect(channel.status == 0)
        #expect(channel.stdout.hasPrefix("POS"))
        let unknown = try await touchstone("debug", "channel", "gpu-01/9")
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("unknown channel"))
        let badAt = try await touchstone("replay", "--at", "yesterday")
        #expect(badAt.status != 0)
        #expect(badAt.stderr.contains("--at takes a position or an ISO 8601 time"))
    }

    @Test func drainDetachAndSetCapacityFromTheCommandLine() async throws {
        _ = try await touchstone("server", "attach", "gpu-01", "--max-tasks", "2")
        let capacity = try await touchstone("server", "set-capacity", "gpu-01", "--max-tasks", "3")
        #expect(capacity.stdout == "gpu-01: max-tasks 3, 0 booked, attached\n")
        let drain = try await touchstone("server", "drain", "gpu-01", "--deadline", "10m", "--reason", "kernel update")
        #expect(drain.status == 0, "\(drain.stderr)")
        let shown = try await touchstone("server", "show", "gpu-01")
        #expect(shown.stdout.contains("state        detached"))
        #expect(shown.stdout.contains("reason: kernel update"))
        #expect(shown.stdout.contains("by operator:"))
        let badDeadline = try await touchstone("server", "drain", "gpu-01", "--deadline", "soon")
        #expect(badDeadline.status != 0)
        let detach = try await touchstone("server", "detach", "gpu-01")
        #expect(detach.stdout == "gpu-01 is detached\n")
        let unknown = try await touchstone("server", "drain", "gpu-99")
        #expect(unknown.stderr.contains("unknown server \"gpu-99\""))
        let events = try await touchstone("events", "--stream", "server/gpu-01")
        for type in ["server.attached", "server.capacity-set", "server.drain-requested", "server.detach-requested", "server.detached"] {
            #expect(events.stdout.contains(type), "missing \(type)")
        }
    }

    @Test func badInputGetsOneLineErrorsAndWritesNothing() async throws {
        _ = try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1")
        let before = try await eventCount()

        let unknownServer = try await touchstone("server", "show", "gpu-99")
        #expect(unknownServer.status != 0)
        #expect(unknownServer.stderr.contains("unknown server \"gpu-99\""))
        #expect(unknownServer.stderr.split(separator: "\n").count == 1)

        let noCommand = try await touchstone("task", "submit", "--name", "x")
        #expect(noCommand.status != 0)
        #expect(noCommand.stderr.contains("a task needs a command"))
        #expect(noCommand.stderr.split(separator: "\n").count == 1)

        let missingFile = try await touchstone("task", "submit", "--file", "/nonexistent/x.py", "--", "python3", "x.py")
        #expect(missingFile.status != 0)
        #expect(missingFile.stderr.contains("cannot read working file /nonexistent/x.py"))

        let badName = try await touchstone("server", "attach", "GPU_1", "--max-tasks", "1")
        #expect(badName.status != 0)

        let unknownTask = try await touchstone("task", "show", "tsk-000000000000")
        #expect(unknownTask.status != 0)
        #expect(unknownTask.stderr.contains("unknown task"))
        #expect(try await eventCount() == before)
    }

    @Test func aDatabaseThatIsNotOursIsRefusedAndLeftAlone() async throws {
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let foreign = Data("SQLite format 3\u{0}".utf8) + Data((0..<8000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        try foreign.write(to: URL(fileURLWithPath: state + "/touchstone.db"))
        let result = try await touchstone("task", "list")
        #expect(result.status != 0)
        #expect(result.stderr.contains("not an SQLite database") || result.stderr.contains("not a Touchstone event log"))
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(try Data(contentsOf: URL(fileURLWithPath: state + "/touchstone.db")) == foreign)
    }

    @Test func aSecondBackendOnTheSameStateRefusesToStart() async throws {
        _ = try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1")
        let first = try ChildProcess(
            builtExecutable("touchstone"), ["serve", "--state-dir", state], logDirectory: directory.path, name: "serve-1")
        defer { first.signal(SIGTERM) }
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: state + "/backend.lock") {
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .milliseconds(200))
        let second = try await touchstone("serve")
        #expect(second.status != 0)
        #expect(second.stderr.contains("another backend (pid \(first.pid)) is already serving"))
        first.signal(SIGTERM)
        #expect(await first.wait(timeout: .seconds(20)) == 0)
    }

    @Test func workingFilePathsThatCannotWorkAreRefusedAtSubmit() async throws {
        _ = try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1")
        let file = directory.file("small")
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        let dot = try await touchstone("task", "submit", "--file", "\(file):.", "--", "true")
        #expect(dot.status != 0)
        #expect(dot.stderr.contains("names the directory itself"))
        let collide = try await touchstone("task", "submit", "--file", "\(file):a", "--file", "\(file):a/b", "--", "true")
        #expect(collide.status != 0)
        #expect(collide.stderr.contains("collide"))
    }
}
