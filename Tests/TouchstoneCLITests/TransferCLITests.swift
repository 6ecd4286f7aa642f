import Foundation
import TestSupport
import Testing

/// `task submit --input/--output`, `task logs`, `task artifacts` and `task fetch` against a real `touchstone serve`
/// and a real `touchstone-agent`.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct TransferCLITests {
    let directory = TemporaryDirectory("cli-transfer")
    var state: String { directory.file("state") }

    func touchstone(_ arguments: String...) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await runToCompletion(
            builtExecutable("touchstone"), Array(arguments),
            environment: ["TOUCHSTONE_STATE_DIR": state], directory: directory.path)
    }

    @Test func inputsOutputsAndLogsFromTheCommandLine() async throws {
        defer { directory.remove() }
        let attach = try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1")
        #expect(attach.status == 0, "\(attach.stderr)")
        let serve = try ChildProcess(
            builtExecutable("touchstone"), ["serve", "--state-dir", state, "--status-interval", "0.2"],
            logDirectory: directory.path, name: "serve")
        let agent = try ChildProcess(
            builtExecutable("touchstone-agent"),
            [
                "--server", "gpu-01", "--queue-path", state + "/queues.db", "--workspace", directory.file("agent"),
                "--poll-wait", "1", "--allow-process-runtime", "--allow-root", "--drain-deadline", "0",
            ],
            logDirectory: directory.path, name: "agent")
        defer {
            serve.signal(SIGTERM)
            agent.signal(SIGTERM)
        }
        let input = directory.file("in.bin")
        try Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: URL(fileURLWithPath: input))
        let submit = try await touchstone(
            "task", "submit", "--input", "\(input):data/in.bin", "--output", "out.bin", "--", "/bin/sh", "-c",
            "for i in 1 2 3 4 5 6; do echo line$i; echo err$i >&2; sleep 0.3; done; cp data/in.bin out.bin")
        #expect(submit.status == 0, "\(submit.stderr)")
        let id = submit.stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let follow = try await touchstone("task", "logs", id, "--follow")
        #expect(follow.status == 0, "\(follow.stderr)\nserve: \(serve.stderr)\nagent: \(agent.stderr)")
        #expect(follow.stdout == (1...6).map { "line\($0)\n" }.joined())
        let tail = try await touchstone("task", "logs", id, "--tail", "2")
        #expect(tail.stdout == "line5\nline6\n")
        let stderr = try await touchstone("task", "logs", id, "--stderr", "--tail", "1")
        #expect(stderr.stdout == "err6\n")

        var artifacts = try await touchstone("task", "artifacts", id)
        for _ in 0..<100 where !artifacts.stdout.contains("out.bin") {
            try await Task.sleep(for: .milliseconds(100))
            artifacts = try await touchstone("task", "artifacts", id)
        }
        #expect(artifacts.stdout.contains("out.bin"), "\(artifacts)\nserve: \(serve.stderr)")
        #expect(artifacts.stdout.contains("300000"))
        let fetched = directory.file("fetched.bin")
        let fetch = try await touchstone("task", "fetch", id, "out.bin", "--to", fetched)
        #expect(fetch.status == 0, "\(fetch.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: fetched)) == Data(contentsOf: URL(fileURLWithPath: input)))
        let missing = try await touchstone("task", "fetch", id, "nope.bin")
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("has no artifact \"nope.bin\""))

        let escape = try await touchstone("task", "submit", "--input", "\(input):../x", "--", "true")
        #expect(escape.status != 0)
        #expect(escape.stderr.contains("must stay inside the task's directory"))
        let events = try await touchstone("events", "--stream", "transfer/\(id)")
        #expect(events.stdout.contains("transfer.completed"))

        serve.signal(SIGTERM)
        agent.signal(SIGTERM)
        #expect(await serve.wait(timeout: .seconds(20)) == 0)
        #expect(await agent.wait(timeout: .seconds(20)) == 0)
    }
}
