import Domain
import EventStore
import Foundation
import Logging
@testable import Orchestrator
import Projections
import TestSupport
import Testing
import Transport
import Wire

/// File transfers over the protocol with real agents: puts of inputs, gets of outputs, resume after `kill -9`, path
/// confinement, the size limit and checksum verification (docs/files.md).
// Generous limits: 50 MB each way through fsynced queues and logs on a host shared with other builds.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct TransferTests {
    static let fiftyMegabytes = 50 * 1024 * 1024

    static func configuration(maxFileBytes: Int64 = 10 << 30) -> BackendConfiguration {
        var configuration = BackendConfiguration(
            statusInterval: .milliseconds(200), requestTimeout: .seconds(20),
            heartbeatTimeout: .seconds(2))
        configuration.transfers = TransferSettings(
            maxFileBytes: maxFileBytes, requestTimeout: .seconds(5), attempts: 100, retryPause: .milliseconds(300),
            pollInterval: .milliseconds(300))
        return configuration
    }

    /// Random bytes from /dev/urandom, written in 1 MiB blocks.
    static func writeRandomFile(_ path: String, bytes: Int) throws {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let output = try #require(FileHandle(forWritingAtPath: path))
        let random = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
        defer {
            try? output.close()
            try? random.close()
        }
        var left = bytes
        while left > 0 {
            let block = try random.read(upToCount: min(left, 1 << 20)) ?? Data()
            try output.write(contentsOf: block)
            left -= block.count
        }
    }

    func submit(
        _ cluster: Cluster, _ id: String, _ command: String, inputs: [(local: String, remote: String)] = [],
        outputs: [String] = []
    ) async throws -> TaskID {
        let store = ArtifactStore(stateDirectory: cluster.directory.path)
        let files = try inputs.map { input in
            let (sha, size) = try store.importInput(input.local)
            return InputFile(path: input.remote, size: size, sha256: sha)
        }
        let task = TaskID(rawValue: id)
        try await cluster.log.append(
            .taskSubmitted(
                TaskSubmitted(
                    taskID: task,
                    spec: TaskSpec(name: id, command: ["/bin/sh", "-c", command], outputs: outputs, inputs: files))),
            expectedVersion: .noStream, metadata: Cluster.operatorMeta)
        return task
    }

    func transferEvents(_ cluster: Cluster, _ task: TaskID) async throws -> [TransferEvent] {
        try await cluster.log.store.read(stream: StreamName.transfer(task)).compactMap {
            if case .transfer(let event) = try ReadModels.decode($0).event { return event }
            return nil
        }
    }

    func requestsSent(_ cluster: Cluster, command: String) async throws -> Int {
        try await cluster.log.store.read(after: 0, limit: 1_000_000, types: ["channel.request.sent"])
            .filter { if case .requestSent(let e) = try ReadModels.decode($0).event { return e.command == command } else { return false } }
            .count
    }

    @Test func fiftyMegabytesGoInAndComeBackOutWithVerifiedChecksums() async throws {
        let cluster = try Cluster(configuration: Self.configuration())
        try await cluster.attach(Fixtures.gpu1, maxTasks: 1)
        let input = cluster.directory.file("big.bin")
        try Self.writeRandomFile(input, bytes: Self.fiftyMegabytes)
        let (inputSHA, _) = try FileDigest.sha256(ofFileAt: input)
        try cluster.startAgent(Fixtures.gpu1)
        try await cluster.run { cluster in
            let task = try await submit(
                cluster, "tsk-00000000f001",
                "mkdir -p out && cp data/big.bin out/copy.bin && ln -s /etc/passwd leak && echo copied",
                inputs: [(input, "data/big.bin")], outputs: ["out/copy.bin", "leak"])
            let ended = try await cluster.waitUntil(timeout: .seconds(300)) { $0.tasks[task]?.status.isTerminal == true }
            // One attempt: a put longer than the start's expiry does not get the booking withdrawn.
            #expect(ended.tasks[task]?.attempt == 1)
            let store = ArtifactStore(stateDirectory: cluster.directory.path)
            let key = TaskAttempt(taskID: task, attempt: 1)
            _ = try await cluster.waitUntil(timeout: .seconds(300)) { _ in
                FileManager.default.fileExists(atPath: store.logCompleteMarker(key))
            }
            var events: [TransferEvent] = []
            for _ in 0..<3_000 {
                events = try await transferEvents(cluster, task)
                if events.contains(where: { if case .rejected = $0 { return true } else { return false } }),
                    try await ArtifactStore.artifacts(of: task, in: cluster.log).count == 1
                { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            let snapshot = try await cluster.log.snapshot()
            #expect(snapshot.tasks[task]?.status == .succeeded, "\(snapshot.tasks[task]?.reason ?? "")")

            let put = events.compactMap { if case .completed(let e) = $0, e.direction == .put { return e } else { return nil } }
            #expect(put.count == 1)
            #expect(put.first?.chunkCount == 267)
            // One run sent every chunk (unless a slow host made a request time out and a second run resumed).
            let putStarts = events.compactMap { if case .started(let e) = $0, e.direction == .put { return e } else { return nil } }
            #expect(putStarts.first?.chunksHeld == 0)
            #expect((putStarts.last?.chunksHeld ?? 0) + (put.first?.chunksSent ?? 0) == 267)
            #expect(put.first?.sha256 == inputSHA)

            let artifacts = try await ArtifactStore.artifacts(of: task, in: cluster.log)
            let copy = try #require(artifacts.first { $0.path == "out/copy.bin" })
            #expect(copy.size == Int64(Self.fiftyMegabytes))
            #expect(copy.sha256 == inputSHA)
            #expect(copy.chunksSent <= 267)
            let stored = store.artifactDirectory(key) + "/out/copy.bin"
            #expect(try FileDigest.sha256(ofFileAt: stored).sha256 == inputSHA)

            // The symlink pointing outside the working directory is refused by the agent, and that is in the log.
            let rejected = events.compactMap { if case .rejected(let e) = $0 { return e } else { return nil } }
            #expect(rejected.map(\.path) == ["leak"])
            #expect(rejected.first?.code == "pathEscapes")
            #expect(!artifacts.contains { $0.path == "leak" })

            let stdout = try String(contentsOfFile: store.logPath(key, .stdout), encoding: .utf8)
            #expect(stdout == "copied\n")
            // No payload reaches the log: a few events per chunk, each small.
            let largest = try await cluster.log.store.read(after: 0, limit: 1_000_000).map(\.payload.count).max() ?? 0
            #expect(largest < 4_096)
        }
        #expect(try await cluster.log.verifyReadModels().mismatched == [])
    }

    @Test func aPutInterruptedByKillingTheAgentResumesFromTheLastConfirmedChunk() async throws {
        let cluster = try Cluster(configuration: Self.configuration())
        try await cluster.attach(Fixtures.gpu1, maxTasks: 1)
        let input = cluster.directory.file("big.bin")
        try Self.writeRandomFile(input, bytes: Self.fiftyMegabytes)
        try cluster.startAgent(Fixtures.gpu1)
        try await cluster.run { cluster in
            let task = try await submit(
                cluster, "tsk-00000000f002", "test $(wc -c < in.bin) -eq \(Self.fiftyMegabytes)",
                inputs: [(input, "in.bin")])
            for _ in 0..<1_200 {
                if try await requestsSent(cluster, command: "putChunk") >= 40 { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(try await requestsSent(cluster, command: "putChunk") >= 40)
            await cluster.killAgent(Fixtures.gpu1)
            // Down for longer than a transfer request's timeout (5 s): the run in progress fails whether or not the
            // dead agent held a chunk request, and the next run must ask what the agent has.
            try await Task.sleep(for: .seconds(8))
            try cluster.startAgent(Fixtures.gpu1)
            let snapshot = try await cluster.waitUntil(timeout: .seconds(400)) { $0.tasks[task]?.status.isTerminal == true }
            #expect(snapshot.tasks[task]?.status == .succeeded, "\(snapshot.tasks[task]?.reason ?? "")")
            #expect(snapshot.tasks[task]?.attempt == 1)

            let events = try await transferEvents(cluster, task)
            let completedIndex = try #require(events.lastIndex { if case .completed = $0 { return true } else { return false } })
            guard case .completed(let completed) = events[completedIndex] else { return }
            let lastStart = try #require(
                events[..<completedIndex].compactMap { if case .started(let e) = $0 { return e } else { return nil } }.last)
            let starts = events.filter { if case .started = $0 { return true } else { return false } }
            #expect(starts.count >= 2, "\(events)")
            #expect(lastStart.chunksHeld > 0)
            #expect(completed.chunksSent < completed.chunkCount)
            #expect(lastStart.chunksHeld + completed.chunksSent == completed.chunkCount)
            let totalPuts = try await requestsSent(cluster, command: "putChunk")
            #expect(totalPuts < completed.chunkCount + 5, "resent from zero? \(totalPuts) putChunk requests")
        }
    }

    @Test func escapesOversizeAndCorruptionAreRefusedAndLogged() async throws {
        let cluster = try Cluster(configuration: Self.configuration(maxFileBytes: 1 << 20))
        try await cluster.attach(Fixtures.gpu1, maxTasks: 1)
        try cluster.startAgent(Fixtures.gpu1)
        let channel = ChannelID(server: Fixtures.gpu1, index: 2)
        let requestName = ChannelQueues.requestQueue(prefix: "touchstone", channel: channel)
        let responseName = ChannelQueues.responseQueue(prefix: "touchstone", channel: channel)
        try? cluster.queues.createQueue(name: requestName)
        try? cluster.queues.createQueue(name: responseName)
        let client = ChannelClient(
            channel: channel, requests: try cluster.queues.queue(named: requestName),
            responses: try cluster.queues.queue(named: responseName), log: cluster.log, state: nil,
            configuration: cluster.configuration, logger: Logger(label: "test"))
        var settings = cluster.configuration.transfers
        settings.requestTimeout = .seconds(20)
        let transfers = TransferClient(
            serverID: Fixtures.gpu1, client: client, log: cluster.log, settings: settings,
            store: ArtifactStore(stateDirectory: cluster.directory.path), logger: Logger(label: "test"))
        let task = TaskID(rawValue: "tsk-00000000e5c1")
        let attempt = TaskAttempt(taskID: task, attempt: 1)
        let small = cluster.directory.file("small.txt")
        try Data("hello\n".utf8).write(to: URL(fileURLWithPath: small))

        // A good put and get first: the agent is up and the channel works.
        try await transfers.put(localPath: small, to: "in/small.txt", attempt: attempt, transferID: "put-ok")
        let back = try await transfers.get("in/small.txt", attempt: attempt)
        #expect(back.sha256 == (try FileDigest.sha256(ofFileAt: small).sha256))

        func expectRefusal(_ code: WireError.Code, _ body: () async throws -> Void) async {
            do {
                try await body()
                Issue.record("expected \(code)")
            } catch {
                #expect((error as? TransferError)?.code == code, "\(error)")
            }
        }
        let before = try await requestsSent(cluster, command: "putChunk")
        for path in ["../x", "/etc/passwd", "a/../../x"] {
            await expectRefusal(.pathEscapes) { try await transfers.put(localPath: small, to: path, attempt: attempt, transferID: "put-bad") }
            await expectRefusal(.pathEscapes) { try await transfers.get(path, attempt: attempt) }
        }
        // A symlink in the working directory that points outside it: only the agent can see it.
        let work = cluster.directory.file("agents/\(Fixtures.gpu1)/tasks/\(task)/1/work")
        try FileManager.default.createSymbolicLink(atPath: work + "/evil", withDestinationPath: "/etc")
        await expectRefusal(.pathEscapes) { try await transfers.put(localPath: small, to: "evil/passwd", attempt: attempt, transferID: "put-link") }
        await expectRefusal(.pathEscapes) { try await transfers.get("evil/passwd", attempt: attempt) }
        #expect(!FileManager.default.fileExists(atPath: "/etc/small.txt"))

        // Over the limit: refused before any chunk is sent.
        let big = cluster.directory.file("big.bin")
        try Self.writeRandomFile(big, bytes: 2 << 20)
        await expectRefusal(.tooLarge) { try await transfers.put(localPath: big, to: "big.bin", attempt: attempt, transferID: "put-big") }
        #expect(try await requestsSent(cluster, command: "putChunk") == before)

        let rejected = try await transferEvents(cluster, task).compactMap { if case .rejected(let e) = $0 { return e } else { return nil } }
        #expect(rejected.filter { $0.code == "pathEscapes" }.count == 8)
        #expect(rejected.filter { $0.code == "tooLarge" }.count == 1)
        #expect(rejected.contains { $0.path == "evil/passwd" && $0.direction == .put })

        // A chunk whose bytes do not match the announced SHA-256: the agent detects it and keeps nothing.
        let identity = FileIdentity(size: 5, sha256: try FileDigest.sha256(ofFileAt: small).sha256)
        let corrupt = PutChunk(
            transferID: "put-corrupt", taskID: task, attempt: 1, path: "corrupt.txt", executable: false,
            file: FileIdentity(size: 6, sha256: identity.sha256), index: 0, data: Data("HELLO\n".utf8))
        let answer = try await client.call(.putChunk(corrupt), taskID: task, delivery: .seconds(20))
        guard case .error(let error) = answer.body else { Issue.record("\(answer.body)"); return }
        #expect(error.code == .checksumMismatch)
        #expect(!FileManager.default.fileExists(atPath: work + "/corrupt.txt"))
        await cluster.stopAgents()
    }
}
