import Foundation
import TestSupport
import Testing

/// Issue 12 as a new user tries it: keys, pinning, the agent's policy, with the real binaries.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct SecurityCLITests {
    let directory = TemporaryDirectory("security")
    var state: String { directory.file("state") }

    func touchstone(_ arguments: String...) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await runToCompletion(
            builtExecutable("touchstone"), arguments, environment: ["TOUCHSTONE_STATE_DIR": state],
            directory: directory.path)
    }

    func agent(_ arguments: String...) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await runToCompletion(builtExecutable("touchstone-agent"), arguments, directory: directory.path)
    }

    @Test func keysInitMakesAnOwnerOnlyKeyAndEveryLaterStartRefusesALooseOne() async throws {
        let made = try await touchstone("keys", "init")
        #expect(made.status == 0, "\(made.stderr)")
        let key = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(Data(base64Encoded: key)?.count == 32)
        var info = stat()
        #expect(stat(state + "/keys/backend.key", &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(stat(state, &info) == 0 && info.st_mode & 0o777 == 0o700)
        #expect(try await touchstone("keys", "show").stdout.contains(key))
        let events = try await touchstone("events", "--type", "keys.")
        #expect(events.stdout.contains("keys.backend-rotated"), "\(events.stdout)")
        chmod(state + "/keys/backend.key", 0o644)
        for command in [["keys", "init"], ["serve"]] {
            let refused = try await runToCompletion(
                builtExecutable("touchstone"), command, environment: ["TOUCHSTONE_STATE_DIR": state], directory: directory.path)
            #expect(refused.status != 0, "\(command)")
            #expect(refused.stderr.contains(state + "/keys/backend.key") && refused.stderr.contains("mode 0644"), "\(refused.stderr)")
            #expect(refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
        }
    }

    @Test func anAgentKeyPinnedByTheOperatorRunsTasksAndAPolicyRefusalIsFinalAndShown() async throws {
        // The agent's key, made on the server and pinned on the backend; the agent trusts the backend's key given as
        // a value (not the co-located file), so only the operator's pin makes its responses count.
        let initialised = try await agent("init", "--server", "gpu-01", "--workspace", directory.file("workspace"))
        #expect(initialised.status == 0, "\(initialised.stderr)")
        let agentKey = initialised.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(Data(base64Encoded: agentKey)?.count == 32)
        var info = stat()
        #expect(stat(directory.file("workspace/agent.key"), &info) == 0 && info.st_mode & 0o777 == 0o600)
        let attached = try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1", "--agent-key", agentKey)
        #expect(attached.status == 0, "\(attached.stderr)")
        let backendKey = try await touchstone("keys", "show").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let serve = try ChildProcess(
            builtExecutable("touchstone"), ["serve", "--state-dir", state, "--status-interval", "0.2"],
            logDirectory: directory.path, name: "serve")
        defer { serve.signal(SIGTERM) }
        // First without --allow-process-runtime: the task fails to start, for good, saying why.
        let strict = try ChildProcess(
            builtExecutable("touchstone-agent"),
            ["--server", "gpu-01", "--queue-path", state + "/queues.db", "--workspace", directory.file("workspace"),
             "--poll-wait", "1", "--drain-deadline", "0", "--backend-key", backendKey],
            logDirectory: directory.path, name: "agent-strict")
        let refused = try await touchstone("task", "submit", "--", "/bin/sh", "-c", "echo ran > \(directory.file("ran"))")
        let refusedID = refused.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let waited = try await touchstone("task", "wait", refusedID)
        #expect(waited.status != 0, "\(waited.stdout)\nserve: \(serve.stderr)\nagent: \(strict.stderr)")
        let shown = try await touchstone("task", "show", refusedID, "--format", "json")
        #expect(shown.stdout.contains("policy: this agent does not run tasks as processes"), "\(shown.stdout)")
        #expect(shown.stdout.contains("\"failureClass\" : \"policy\"") || shown.stdout.contains("\"failureClass\":\"policy\""), "\(shown.stdout)")
        #expect(!shown.stdout.contains("task.requeued"), "a policy refusal is not retried")
        #expect(!FileManager.default.fileExists(atPath: directory.file("ran")))
        strict.signal(SIGTERM)
        #expect(await strict.wait(timeout: .seconds(20)) == 0)
        // Then allowed: the responses, signed with the pinned key, are accepted and the task runs.
        let allowed = try ChildProcess(
            builtExecutable("touchstone-agent"),
            ["--server", "gpu-01", "--queue-path", state + "/queues.db", "--workspace", directory.file("workspace"),
             "--poll-wait", "1", "--drain-deadline", "0", "--backend-key", backendKey, "--allow-process-runtime",
             "--allow-root"],
            logDirectory: directory.path, name: "agent")
        defer { allowed.signal(SIGTERM) }
        let good = try await touchstone("task", "submit", "--", "true")
        let done = try await touchstone("task", "wait", good.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(done.status == 0, "\(done.stdout)\nserve: \(serve.stderr)\nagent: \(allowed.stderr)")
        let pins = try await touchstone("events", "--type", "server.agent-key-pinned", "--format", "json")
        #expect(pins.stdout.contains(agentKey) && pins.stdout.contains("operator"), "\(pins.stdout)")
        #expect(!pins.stdout.contains("co-located"))
        // A rekey pins the next key and keeps the old one for the overlap.
        let next = try await agent("init", "--server", "gpu-01", "--workspace", directory.file("workspace-2"))
        let rekeyed = try await touchstone(
            "server", "rekey", "gpu-01", "--agent-key", next.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
            "--overlap", "5m")
        #expect(rekeyed.status == 0 && rekeyed.stdout.contains("previous one is trusted until"), "\(rekeyed.stderr)")
        let still = try await touchstone("task", "submit", "--", "true")
        let stillDone = try await touchstone("task", "wait", still.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(stillDone.status == 0, "\(stillDone.stdout)\(stillDone.stderr)\nserve: \(serve.stderr)\nagent: \(allowed.stderr)")
    }

    /// Every regular file under a directory whose bytes contain `needle`.
    static func files(under root: String, containing needle: String) -> [String] {
        var found: [String] = []
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let relative = enumerator?.nextObject() as? String {
            let path = root + "/" + relative
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                let data = FileManager.default.contents(atPath: path)
            else { continue }
            if data.range(of: Data(needle.utf8)) != nil { found.append(relative) }
        }
        return found
    }

    @Test func aSecretEnvValueReachesOnlyTheTaskAndNoByteOfTheStateDirectory() async throws {
        #expect(try await touchstone("server", "attach", "gpu-01", "--max-tasks", "1").status == 0)
        let serve = try ChildProcess(
            builtExecutable("touchstone"), ["serve", "--state-dir", state, "--status-interval", "0.2"],
            logDirectory: directory.path, name: "serve")
        defer { serve.signal(SIGTERM) }
        let agentProcess = try ChildProcess(
            builtExecutable("touchstone-agent"),
            ["--server", "gpu-01", "--queue-path", state + "/queues.db", "--workspace", directory.file("workspace"),
             "--poll-wait", "1", "--drain-deadline", "0", "--allow-process-runtime", "--allow-root"],
            logDirectory: directory.path, name: "agent")
        defer { agentProcess.signal(SIGTERM) }
        // The co-located agent's keys (signing and sealing) are pinned at its first answer.
        var pinned = false
        for _ in 0..<200 where !pinned {
            pinned = try await touchstone("events", "--type", "server.agent-key-pinned", "--format", "json").stdout
                .contains("sealingKey")
            if !pinned { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(pinned, "serve: \(serve.stderr)\nagent: \(agentProcess.stderr)")
        let secret = "s3cr3t-\(UInt64.random(in: 0...UInt64.max))"
        let seen = directory.file("seen")
        let submitted = try await runToCompletion(
            builtExecutable("touchstone"),
            ["task", "submit", "--secret-env", "TOP_SECRET", "--", "/bin/sh", "-c", "printf %s \"$TOP_SECRET\" > \(seen)"],
            environment: ["TOUCHSTONE_STATE_DIR": state, "TOP_SECRET": secret], directory: directory.path)
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let waited = try await touchstone("task", "wait", id)
        #expect(waited.status == 0, "\(waited.stdout)\nagent: \(agentProcess.stderr)")
        // The task saw it.
        #expect((try? String(contentsOfFile: seen, encoding: .utf8)) == secret)
        // Nowhere else: not in `events`, not in `task show`, not in any byte of the state directory or the agent's
        // workspace (log, queues, keys, logs/, artifacts/, journal).
        let events = try await touchstone("events", "--tail", "0", "--format", "json")
        #expect(events.status == 0 && events.stdout.contains("secrets"), "the sealed form is in the log")
        #expect(!events.stdout.contains(secret))
        #expect(!(try await touchstone("task", "show", id, "--format", "json")).stdout.contains(secret))
        #expect(Self.files(under: state, containing: secret).isEmpty, "\(Self.files(under: state, containing: secret))")
        #expect(Self.files(under: directory.file("workspace"), containing: secret).isEmpty)
        // A variable that is not set is a one-line error, and nothing is submitted.
        let unset = try await touchstone("task", "submit", "--secret-env", "NOT_SET_ANYWHERE_12", "--", "true")
        #expect(unset.status != 0 && unset.stderr.contains("NOT_SET_ANYWHERE_12: the variable is not set"), "\(unset.stderr)")
    }
}
