import Foundation
import Testing

@testable import Transport

/// The queue database file and the queues in it.
@Suite(.timeLimit(.minutes(1))) struct EmbeddedQueueStoreTests {
    @Test func createsADurableDatabaseWithItsApplicationID() throws {
        let fixture = try EmbeddedQueueFixture()
        let queue = try fixture.makeQueue()
        let file = fixture.store.layout.file(ofQueue: queue.name)
        #expect(file.hasPrefix(fixture.directory + "/queues.d/"))
        #expect(FileManager.default.fileExists(atPath: file))
        #expect(!FileManager.default.fileExists(atPath: fixture.path))
        #expect(try fixture.store.writerPragma("synchronous", ofQueue: queue.name) == 2)  // FULL
        #expect(
            try fixture.store.writerPragma("application_id", ofQueue: queue.name)
                == Int64(EmbeddedQueueStore.applicationID))
        #expect(try fixture.store.writerPragma("busy_timeout", ofQueue: queue.name) == 5_000)
    }

    /// One server's channels share a file; another server's queues are in another.
    @Test func keepsEachServersQueuesInTheirOwnFile() throws {
        let fixture = try EmbeddedQueueFixture()
        for name in ["ts-gpu-01-0-req.fifo", "ts-gpu-01-0-resp.fifo", "ts-gpu-01-1-req.fifo", "ts-gpu-02-0-req.fifo"] {
            try fixture.store.createQueue(name: name)
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: fixture.directory + "/queues.d")
            .filter { $0.hasSuffix(".db") }.sorted()
        #expect(files == ["ts-gpu-01.db", "ts-gpu-02.db"])
        #expect(
            try fixture.store.queueNames()
                == ["ts-gpu-01-0-req.fifo", "ts-gpu-01-0-resp.fifo", "ts-gpu-01-1-req.fifo", "ts-gpu-02-0-req.fifo"])
    }

    /// A queue file of an earlier version (every queue in the one file at the queue path) is used as it is.
    @Test func usesASingleQueueFileOfAnEarlierVersion() async throws {
        let legacy = try Self.closedQueueDatabase(queues: ["a-0-req.fifo", "b-0-req.fifo"])
        defer { try? FileManager.default.removeItem(atPath: Self.temporaryDirectory(of: legacy)) }
        let store = try EmbeddedQueueStore(path: legacy)
        defer { store.close() }
        #expect(store.layout == .singleFile(path: legacy, directory: EmbeddedQueueLayout.directory(forPath: legacy)))
        #expect(try store.queueNames() == ["a-0-req.fifo", "b-0-req.fifo"])
        let queue = try store.queue(named: "b-0-req.fifo")
        _ = try await queue.send("kept", groupID: "g", deduplicationID: "k")
        let received = try await queue.receive(maxMessages: 1, waitTime: .zero, visibilityTimeout: nil)
        #expect(received.map(\.body) == ["kept"])
    }

    @Test func refusesADirectoryAsTheQueuePath() throws {
        let directory = EmbeddedQueueFixture.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let error = #expect(throws: QueueError.self) { _ = try EmbeddedQueueStore(path: directory) }
        #expect(error?.code == .invalidParameter)
        #expect(error?.message.contains("is a directory") == true)
    }

    @Test func keepsQueuesAndMessagesAcrossReopening() async throws {
        let fixture = try EmbeddedQueueFixture()
        let queue = try fixture.makeQueue(QueueAttributes(visibilityTimeout: .seconds(7), maximumMessageSize: 2_048))
        let sent = try await queue.send("kept", groupID: "g", deduplicationID: "k")
        fixture.store.close()

        let reopened = try EmbeddedQueueStore(path: fixture.path, now: fixture.clock.now)
        defer { reopened.close() }
        #expect(try reopened.queueNames() == [queue.name])
        try reopened.createQueue(
            name: queue.name, attributes: QueueAttributes(visibilityTimeout: .seconds(7), maximumMessageSize: 2_048))
        let messages = try await reopened.queue(named: queue.name).receive(
            maxMessages: 10, waitTime: .zero, visibilityTimeout: nil)
        #expect(messages.map(\.messageID) == [sent.messageID])
    }

    @Test func createQueueIsIdempotentForTheSameAttributes() async throws {
        let fixture = try EmbeddedQueueFixture()
        try fixture.store.createQueue(name: "same.fifo")
        let queue = try fixture.store.queue(named: "same.fifo")
        _ = try await queue.send("a", groupID: "g", deduplicationID: "a")
        try fixture.store.createQueue(name: "same.fifo", attributes: QueueAttributes())
        #expect(try await queue.approximateCounts() == QueueCounts(visible: 1, inFlight: 0))

        let error = #expect(throws: QueueError.self) {
            try fixture.store.createQueue(
                name: "same.fifo", attributes: QueueAttributes(visibilityTimeout: .seconds(5)))
        }
        #expect(error?.code == .queueNameExists)
    }

    @Test(arguments: [
        "no-suffix", ".fifo", "has space.fifo", "dot.inside.fifo", "ünïcode.fifo", "slash/name.fifo",
        String(repeating: "q", count: 76) + ".fifo",
    ]) func refusesAnInvalidQueueName(_ name: String) throws {
        let fixture = try EmbeddedQueueFixture()
        let error = #expect(throws: QueueError.self) { try fixture.store.createQueue(name: name) }
        #expect(error?.code == .invalidParameter)
    }

    @Test func acceptsTheLongestAndShortestQueueNames() throws {
        let fixture = try EmbeddedQueueFixture()
        let longest = String(repeating: "q", count: 75) + ".fifo"
        try fixture.store.createQueue(name: longest)
        try fixture.store.createQueue(name: "a.fifo")
        try fixture.store.createQueue(name: "Mixed_Case-09.fifo")
        #expect(try fixture.store.queueNames() == ["Mixed_Case-09.fifo", "a.fifo", longest])
    }

    @Test(arguments: [
        QueueAttributes(visibilityTimeout: .seconds(43_201)), QueueAttributes(visibilityTimeout: .seconds(-1)),
        QueueAttributes(maximumMessageSize: 1_023), QueueAttributes(maximumMessageSize: 1_048_577),
    ]) func refusesOutOfRangeAttributes(_ attributes: QueueAttributes) throws {
        let fixture = try EmbeddedQueueFixture()
        let error = #expect(throws: QueueError.self) {
            try fixture.store.createQueue(name: "q.fifo", attributes: attributes)
        }
        #expect(error?.code == .invalidParameter)
    }

    @Test func deletesAQueueWithItsMessages() async throws {
        let fixture = try EmbeddedQueueFixture()
        try fixture.store.createQueue(name: "b.fifo")
        try fixture.store.createQueue(name: "a.fifo")
        #expect(try fixture.store.queueNames() == ["a.fifo", "b.fifo"])
        _ = try await fixture.store.queue(named: "a.fifo").send("x", groupID: "g", deduplicationID: "x")

        try fixture.store.deleteQueue(name: "a.fifo")
        #expect(try fixture.store.queueNames() == ["b.fifo"])
        let missing = #expect(throws: QueueError.self) { _ = try fixture.store.queue(named: "a.fifo") }
        #expect(missing?.code == .queueDoesNotExist)
        let deleteAgain = #expect(throws: QueueError.self) { try fixture.store.deleteQueue(name: "a.fifo") }
        #expect(deleteAgain?.code == .queueDoesNotExist)

        try fixture.store.createQueue(name: "a.fifo")
        let recreated = try fixture.store.queue(named: "a.fifo")
        #expect(try await recreated.approximateCounts() == QueueCounts(visible: 0, inFlight: 0))
        let resent = try await recreated.send("x", groupID: "g", deduplicationID: "x")
        #expect(!resent.deduplicated)
    }

    @Test func refusesAFileOfRandomBytes() throws {
        let directory = EmbeddedQueueFixture.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/random.bin"
        let bytes = Data((0..<4_096).map { _ in UInt8.random(in: 0...255) })
        try bytes.write(to: URL(fileURLWithPath: path))

        let error = #expect(throws: QueueError.self) { _ = try EmbeddedQueueStore(path: path) }
        #expect(error?.code == .notAQueueDatabase)
        #expect(error?.message.contains(path) == true)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == bytes)
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
    }

    @Test func refusesAnSQLiteDatabaseOfAnotherApplication() throws {
        let path = try Self.closedQueueDatabase()
        defer { try? FileManager.default.removeItem(atPath: Self.temporaryDirectory(of: path)) }
        try Self.patchApplicationID(of: path, to: 0x1234_5678)

        let error = #expect(throws: QueueError.self) { _ = try EmbeddedQueueStore(path: path) }
        #expect(error?.code == .notAQueueDatabase)
        #expect(error?.message.contains(path) == true)
        #expect(error?.message.contains("0x12345678") == true)
    }

    /// An SQLite file with tables but no application ID was made by something else: refused after opening, under
    /// the write lock.
    @Test func refusesAnSQLiteDatabaseWithTablesButNoApplicationID() throws {
        let path = try Self.closedQueueDatabase()
        defer { try? FileManager.default.removeItem(atPath: Self.temporaryDirectory(of: path)) }
        try Self.patchApplicationID(of: path, to: 0)

        let error = #expect(throws: QueueError.self) { _ = try EmbeddedQueueStore(path: path) }
        #expect(error?.code == .notAQueueDatabase)
        #expect(error?.message.contains(path) == true)
    }

    @Test func opensAnEmptyFile() throws {
        let directory = EmbeddedQueueFixture.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/empty.sqlite"
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        let store = try EmbeddedQueueStore(path: path)
        defer { store.close() }
        try store.createQueue(name: "q.fifo")
        #expect(try store.queueNames() == ["q.fifo"])
    }

    @Test func storesCreatingANewFileAtOnceAllWork() async throws {
        let directory = EmbeddedQueueFixture.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/shared.sqlite"
        let stores = try (0..<4).map { _ in try EmbeddedQueueStore(path: path) }
        defer { for store in stores { store.close() } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for store in stores { group.addTask { try store.createQueue(name: "shared.fifo") } }
            try await group.waitForAll()
        }
        for store in stores { #expect(try store.queueNames() == ["shared.fifo"]) }
    }

    // MARK: Helpers

    /// A queue database file holding `queues`, closed (so its WAL is checkpointed into the file): a group file
    /// made through the store, then given more queues as a single file.
    private static func closedQueueDatabase(queues: [String] = ["q.fifo"]) throws -> String {
        let directory = EmbeddedQueueFixture.makeTemporaryDirectory()
        let store = try EmbeddedQueueStore(path: directory + "/queues.sqlite")
        try store.createQueue(name: queues[0])
        let path = store.layout.file(ofQueue: queues[0])
        store.close()
        let single = try EmbeddedQueueStore(path: path)
        for name in queues.dropFirst() { try single.createQueue(name: name) }
        single.close()
        // Copy the WAL into the file and empty it, so that a patched header is what SQLite reads.
        let checkpoint = Process()
        checkpoint.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        checkpoint.arguments = ["python3", "-c", "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('PRAGMA wal_checkpoint(TRUNCATE)')", path]
        try checkpoint.run()
        checkpoint.waitUntilExit()
        try #require(checkpoint.terminationStatus == 0)
        return path
    }

    /// The temporary directory of a file made by ``closedQueueDatabase(queues:)`` (`<tmp>/queues.d/<group>.db`).
    private static func temporaryDirectory(of file: String) -> String {
        ((file as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
    }

    /// Writes `PRAGMA application_id` straight into the header: the big-endian integer at offset 68.
    private static func patchApplicationID(of path: String, to id: UInt32) throws {
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        try #require(data.count >= 100)
        for i in 0..<4 { data[68 + i] = UInt8(truncatingIfNeeded: id >> (24 - 8 * UInt32(i))) }
        try data.write(to: URL(fileURLWithPath: path))
    }
}
