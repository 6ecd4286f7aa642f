import Foundation
import Testing

@testable import Transport

/// The queue database file and the queues in it.
@Suite(.timeLimit(.minutes(1))) struct EmbeddedQueueStoreTests {
    @Test func createsADurableDatabaseWithItsApplicationID() throws {
        let fixture = try EmbeddedQueueFixture()
        #expect(FileManager.default.fileExists(atPath: fixture.path))
        #expect(try fixture.store.writerPragma("synchronous") == 2)  // FULL
        #expect(try fixture.store.writerPragma("application_id") == Int64(EmbeddedQueueStore.applicationID))
        #expect(try fixture.store.writerPragma("busy_timeout") == 5_000)
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
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
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
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
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

    @Test func storesOpeningANewFileAtOnceAllWork() async throws {
        let directory = EmbeddedQueueFixture.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/shared.sqlite"
        let stores = try await withThrowingTaskGroup(of: EmbeddedQueueStore.self) { group in
            for _ in 0..<4 { group.addTask { try EmbeddedQueueStore(path: path) } }
            return try await group.reduce(into: [EmbeddedQueueStore]()) { $0.append($1) }
        }
        defer { for store in stores { store.close() } }
        try stores[0].createQueue(name: "shared.fifo")
        for store in stores { #expect(try store.queueNames() == ["shared.fifo"]) }
    }

    // MARK: Helpers

    /// A queue database with one queue, closed (so its WAL is checkpointed into the file).
    private static func closedQueueDatabase() throws -> String {
        let directory = EmbeddedQueueFixture.makeTemporaryDirectory()
        let path = directory + "/queues.sqlite"
        let store = try EmbeddedQueueStore(path: path)
        try store.createQueue(name: "q.fifo")
        store.close()
        try #require(!FileManager.default.fileExists(atPath: path + "-wal"))
        return path
    }

    /// Writes `PRAGMA application_id` straight into the header: the big-endian integer at offset 68.
    private static func patchApplicationID(of path: String, to id: UInt32) throws {
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        try #require(data.count >= 100)
        for i in 0..<4 { data[68 + i] = UInt8(truncatingIfNeeded: id >> (24 - 8 * UInt32(i))) }
        try data.write(to: URL(fileURLWithPath: path))
    }
}
