import Foundation
import TestSupport
import Testing

/// Issue 15, part 4 (files only): `touchstone gc` against a state directory a real backend and agent filled.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct GCTests {
    let directory = TemporaryDirectory("gc")
    var state: String { directory.file("state") }

    func touchstone(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await runToCompletion(
            builtExecutable("touchstone"), arguments, environment: ["TOUCHSTONE_STATE_DIR": state],
            directory: directory.path)
    }

    func contents(_ subdirectory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: state + "/" + subdirectory)) ?? [])
            .filter { !$0.hasPrefix(".") }.sorted()
    }

    @Test func gcRemovesEndedTasksFilesRecordsARunAndLeavesTheLogVerifiable() async throws {
        #expect(try await touchstone(["server", "attach", "gpu-01", "--max-tasks", "1"]).status == 0)
        let serve = try ChildProcess(
            builtExecutable("touchstone"), ["serve", "--state-dir", state, "--status-interval", "0.2"],
            logDirectory: directory.path, name: "serve")
        let agent = try ChildProcess(
            builtExecutable("touchstone-agent"),
            [
                "--server", "gpu-01", "--queue-path", state + "/queues.db", "--workspace", directory.file("workspace"),
                "--poll-wait", "1", "--drain-deadline", "0", "--no-cgroups", "--allow-process-runtime", "--allow-root",
            ], logDirectory: directory.path, name: "agent")
        defer {
            serve.signal(SIGKILL)
            agent.signal(SIGKILL)
        }
        let input = directory.file("data.bin")
        try Data(repeating: 7, count: 50_000).write(to: URL(fileURLWithPath: input))
        let submitted = try await touchstone([
            "task", "submit", "--input", input + ":data.bin", "--output", "out.txt", "--",
            "/bin/sh", "-c", "wc -c < data.bin > out.txt; echo done",
        ])
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let task = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try await touchstone(["task", "wait", task]).status == 0)
        for _ in 0..<100 where contents("artifacts") != [task] || !FileManager.default.fileExists(
            atPath: state + "/logs/\(task)/1/.complete")
        {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(contents("artifacts") == [task])
        #expect(contents("logs") == [task])
        #expect(contents("inputs").count == 1)

        // Within the retention nothing goes; a dry run says what would, and records nothing.
        let kept = try await touchstone(["gc"])
        #expect(kept.status == 0, "\(kept.stderr)")
        #expect(kept.stdout.contains("freed 0 bytes in 0 path(s) (retention 30 days)"), "\(kept.stdout)")
        let dry = try await touchstone(["gc", "--retention-days", "0", "--dry-run"])
        #expect(dry.stdout.contains("would remove artifacts/\(task)"), "\(dry.stdout)")
        #expect(contents("artifacts") == [task])

        // Retention 0: the ended task's artifacts and logs go; its input, copied in less than an hour ago, stays.
        let first = try await touchstone(["gc", "--retention-days", "0"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("removed artifacts/\(task)"), "\(first.stdout)")
        #expect(first.stdout.contains("removed logs/\(task)"), "\(first.stdout)")
        #expect(contents("artifacts").isEmpty)
        #expect(contents("logs").isEmpty)
        #expect(contents("inputs").count == 1)
        // An hour later the input is no longer needed either.
        let blob = state + "/inputs/" + contents("inputs")[0]
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-7200)], ofItemAtPath: blob)
        let second = try await touchstone(["gc", "--retention-days", "0", "--format", "json"])
        let event = try #require(try JSONSerialization.jsonObject(with: Data(second.stdout.utf8)) as? [String: Any])
        #expect(event["bytesFreed"] as? Int == 50_000, "\(second.stdout)")
        #expect(contents("inputs").isEmpty)

        // Every run but the dry one is an event; the chain and the read models still verify.
        let events = try await touchstone(["events", "--type", "maintenance.", "--count"])
        #expect(events.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "3", "\(events.stdout)\(events.stderr)")
        let audit = try await touchstone(["audit", "verify"])
        #expect(audit.status == 0, "\(audit.stdout)\(audit.stderr)")
        // The task is still shown, with its outputs' records; its removed files are said to be removed.
        #expect(try await touchstone(["task", "show", task]).status == 0)
        let logs = try await touchstone(["task", "logs", task])
        #expect(logs.status != 0)
        #expect(logs.stderr.contains("the log mirror of \(task) was removed by `touchstone gc` on "), "\(logs.stderr)")
        let fetched = try await touchstone(["task", "fetch", task, "out.txt", "--to", directory.file("out.txt")])
        #expect(fetched.status != 0)
        #expect(fetched.stderr.contains("the artifacts of \(task) were removed by `touchstone gc` on "), "\(fetched.stderr)")
        serve.signal(SIGTERM)
        agent.signal(SIGTERM)
        #expect(await serve.wait(timeout: .seconds(20)) == 0)
        #expect(await agent.wait(timeout: .seconds(20)) == 0)
    }
}
