@preconcurrency import Crypto
import Agent
import Domain
import Foundation
import TestSupport
import Testing
import Transport
import Wire

/// Issue 12 part 2, the agent's side: only requests signed by a trusted backend key are read, a copy of one is never
/// executed twice, the refusals are signed and name nothing of the forger's message, and the agent keeps running.
/// A real `touchstone-agent` on the embedded queue, driven by raw protocol messages.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct AgentSigningTests {
    typealias Harness = AgentProcessTests.Harness

    static func lines(_ path: String) -> Int {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").count
    }

    /// Receives the next raw response text on a channel (to check its signature).
    static func rawResponse(_ harness: Harness, channel: Int) async throws -> String {
        for _ in 0..<20 {
            if let message = try await harness.responses[channel].receive(
                maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: nil
            ).first {
                try await harness.responses[channel].delete(receiptHandle: message.receiptHandle)
                return message.body
            }
        }
        Issue.record("no response; agent stderr:\n\(harness.agent.stderr)")
        throw CancellationError()
    }

    @Test func aForgedStartSignedWithAnotherKeyIsRefusedWithASignedErrorAndNothingRuns() async throws {
        var harness = try await Harness(server: Fixtures.gpu1)
        let marker = harness.directory.file("forged-ran")
        let forger = Curve25519.Signing.PrivateKey()
        let spec = TaskSpec(command: ["/bin/sh", "-c", "echo pwned > \(marker)"])
        let forged = harness.request(.startTask(StartTask(taskID: Fixtures.taskA, attempt: 1, spec: spec, backend: "x")))
        try await harness.sendRaw(WireCoding.encodeSigned(forged, with: forger))
        let text = try await Self.rawResponse(harness, channel: 1)
        // Signed by the agent's own key (its workspace's agent.key.pub).
        let agentKey = try KeyFiles.publicKeys(from: "@" + harness.directory.file("workspace/agent.key.pub"))
        guard case .valid = MessageSigning.verify(text, context: .response, trusting: agentKey) else {
            Issue.record("the refusal is not signed by the agent: \(text)")
            return
        }
        let response = try WireCoding.decodeResponse(text)
        guard case .error(let refusal) = response.body else { Issue.record("\(response.body)"); return }
        #expect(refusal.code == .unauthenticated)
        // Nothing of the forger's message is signed over: no request ID, epoch or sequence, no command.
        #expect(response.requestID == nil)
        #expect(response.epoch == -1 && response.sequence == -1)
        #expect(!text.contains(forged.requestID.rawValue) && !text.contains("pwned") && !text.contains(Fixtures.taskA.rawValue))
        // The unsigned original is refused the same way.
        try await harness.sendRaw(WireCoding.encode(forged))
        guard case .error(let unsigned) = try await harness.response().body else { Issue.record("accepted"); return }
        #expect(unsigned.code == .unauthenticated)
        // The agent keeps running, answers the real backend, and never started the forged task.
        let hello = harness.request(.hello, channel: 1)
        try await harness.send(WireCoding.encode(hello))
        guard case .hello(let inventory) = try await harness.response().body else { Issue.record("no hello"); return }
        #expect(inventory.tasks.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: marker))
        #expect(harness.agent.stderr.contains("request refused"))
        #expect(await harness.stop() == 0)
    }

    @Test func aCopyOfAValidRequestIsRefusedAsReplayedAndNotExecutedAgain() async throws {
        var harness = try await Harness(server: Fixtures.gpu1)
        let marker = harness.directory.file("runs")
        let spec = TaskSpec(command: ["/bin/sh", "-c", "echo run >> \(marker)"])
        let start = harness.request(.startTask(StartTask(taskID: Fixtures.taskA, attempt: 1, spec: spec, backend: "t")))
        let signed = WireCoding.encodeSigned(start, with: harness.backendKey)
        try await harness.sendRaw(signed)
        guard case .taskStarted = try await harness.response().body else { Issue.record("not started"); return }
        // The same bytes again (a copy taken from the queue), under a new deduplication ID.
        try await harness.sendRaw(signed)
        let copy = try await harness.response()
        guard case .error(let refusal) = copy.body else { Issue.record("\(copy.body)"); return }
        #expect(refusal.code == .replayed)
        #expect(copy.requestID == nil)
        // A resend by the backend is a new message (a new sentAt) with the same request ID: answered from the
        // journal, not refused, and not executed again.
        var resend = start
        resend.sentAt = Date()
        try await harness.send(WireCoding.encode(resend))
        let answered = try await harness.response()
        #expect(answered.requestID == start.requestID)
        guard case .taskStarted = answered.body else { Issue.record("\(answered.body)"); return }
        try await Task.sleep(for: .milliseconds(500))
        #expect(Self.lines(marker) == 1)
        #expect(await harness.stop() == 0)
    }

    @Test func aRequestIsRefusedUntilTheBackendKeyFileTrustsItsSigner() async throws {
        var harness = try await Harness(server: Fixtures.gpu1)
        // A rotation: a new key signs; the agent reads the trusted-keys file again when it changes, without a restart.
        let next = Curve25519.Signing.PrivateKey()
        let hello = harness.request(.hello, channel: 0)
        try await harness.sendRaw(WireCoding.encodeSigned(hello, with: next), channel: 0)
        guard case .error(let before) = try await harness.response(channel: 0).body else { Issue.record("accepted"); return }
        #expect(before.code == .unauthenticated)
        let trusted = KeyDirectory(stateDirectory: harness.directory.path).trusted
        let old = try String(contentsOfFile: trusted, encoding: .utf8)
        try (old + KeyFiles.text(of: next.publicKey) + "\n").write(toFile: trusted, atomically: true, encoding: .utf8)
        let again = harness.request(.hello, channel: 0)
        try await harness.sendRaw(WireCoding.encodeSigned(again, with: next), channel: 0)
        let reply = try await harness.response(channel: 0)
        #expect(reply.requestID == again.requestID)
        guard case .hello = reply.body else { Issue.record("\(reply.body)"); return }
        #expect(await harness.stop() == 0)
    }

    @Test func theWorkspaceAndTheAgentKeyAreOwnerOnly() async throws {
        var harness = try await Harness(server: Fixtures.gpu1)
        let hello = harness.request(.hello, channel: 0)
        try await harness.send(WireCoding.encode(hello), channel: 0)
        _ = try await harness.response(channel: 0)
        var info = stat()
        #expect(stat(harness.directory.file("workspace"), &info) == 0 && info.st_mode & 0o777 == 0o700)
        #expect(stat(harness.directory.file("workspace/agent.key"), &info) == 0 && info.st_mode & 0o777 == 0o600)
        // The embedded queue files the test made through EmbeddedQueueStore, as `server attach` makes them.
        let queues = EmbeddedQueueLayout.directory(forPath: harness.directory.file("queues.db"))
        #expect(stat(queues, &info) == 0 && info.st_mode & 0o777 == 0o700)
        for file in try FileManager.default.contentsOfDirectory(atPath: queues) where file.hasSuffix(".sqlite") || file.hasSuffix(".db") {
            #expect(stat(queues + "/" + file, &info) == 0 && info.st_mode & 0o077 == 0, "\(file)")
        }
        #expect(await harness.stop() == 0)
    }
}

/// Issue 12 part 3 with a real agent: its own flags decide what runs, whatever the request asks.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct AgentPolicyTests {
    typealias Harness = AgentProcessTests.Harness

    @Test func anAgentWithoutThePolicyFlagsRefusesATaskSayingWhyAndRunsNothing() async throws {
        var harness = try await Harness(server: Fixtures.gpu1, policy: [])
        let marker = harness.directory.file("ran")
        let spec = TaskSpec(command: ["/bin/sh", "-c", "echo ran > \(marker)"])
        let start = harness.request(.startTask(StartTask(taskID: Fixtures.taskA, attempt: 1, spec: spec, backend: "t")))
        try await harness.send(WireCoding.encode(start))
        guard case .taskStarted(let report) = try await harness.response().body else { Issue.record("no report"); return }
        #expect(report.state == .failedToStart)
        #expect(report.reason?.hasPrefix(RunPolicy.refusalPrefix) == true)
        #expect(report.reason?.contains("--allow-process-runtime") == true, "\(report.reason ?? "")")
        try await Task.sleep(for: .milliseconds(300))
        #expect(!FileManager.default.fileExists(atPath: marker))
        #expect(await harness.stop() == 0)
    }

    @Test func runAsRunsTheTaskAsThatUserInADirectoryItOwns() async throws {
        try #require(getuid() == 0, "the agent must be root to run tasks as another user")
        var harness = try await Harness(server: Fixtures.gpu1, policy: ["--allow-process-runtime", "--run-as", "nobody"])
        let spec = TaskSpec(command: ["/bin/sh", "-c", "id -u > out.txt; id -G >> out.txt"], outputs: ["out.txt"])
        let start = harness.request(.startTask(StartTask(taskID: Fixtures.taskA, attempt: 1, spec: spec, backend: "t")))
        try await harness.send(WireCoding.encode(start))
        guard case .taskStarted(let started) = try await harness.response().body else { Issue.record("no report"); return }
        #expect(started.state != .failedToStart, "\(started.reason ?? "")")
        let nobody = try #require(getpwnam("nobody")).pointee
        let ended = try #require(try await AgentProcessTests().waitForReport(&harness, Fixtures.taskA) { $0.state == .exited })
        #expect(ended.exitCode == 0, "\(ended.reason ?? "")")
        #expect(ended.outputs["out.txt"] == "\(nobody.pw_uid)\n\(nobody.pw_gid)\n")
        #expect(await harness.stop() == 0)
    }
}
