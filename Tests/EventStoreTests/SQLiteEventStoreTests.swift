@testable import EventStore
import Foundation
import GRDB
import TestSupport
import Testing

@Suite struct SQLiteEventStoreTests {
    let directory = TemporaryDirectory("eventstore")

    func event(_ type: String = "thing.happened", _ body: String = "{}") -> ProposedEvent {
        ProposedEvent(type: type, schema: 1, payload: Data(body.utf8), metadata: EventMetadata(actor: "test"))
    }

    @Test func appendAssignsPositionsAndVersions() async throws {
        let store = try SQLiteEventStore(path: directory.file("log.db"))
        let first = try await store.append([event(), event()], to: "a", expectedVersion: .noStream)
        let second = try await store.append([event()], to: "b", expectedVersion: .noStream)
        #expect(first.map(\.position) == [1, 2])
        #expect(first.map(\.version) == [1, 2])
        #expect(second.map(\.position) == [3])
        #expect(second.map(\.version) == [1])
        #expect(try await store.lastPosition() == 3)
        #expect(try await store.version(of: "a") == 2)
        #expect(try await store.version(of: "missing") == 0)
    }

    @Test func appendWithStaleExpectedVersionConflicts() async throws {
        let store = try SQLiteEventStore(path: directory.file("log.db"))
        try await store.append([event()], to: "a", expectedVersion: .noStream)
        let error = await #expect(throws: EventStoreError.self) {
            try await store.append([event()], to: "a", expectedVersion: .exact(0))
        }
        #expect(error?.code == .wrongExpectedVersion)
        let again = await #expect(throws: EventStoreError.self) {
            try await store.append([event()], to: "a", expectedVersion: .noStream)
        }
        #expect(again?.code == .wrongExpectedVersion)
        try await store.append([event()], to: "a", expectedVersion: .exact(1))
        #expect(try await store.version(of: "a") == 2)
    }

    @Test func multiStreamAppendIsAllOrNothing() async throws {
        let store = try SQLiteEventStore(path: directory.file("log.db"))
        try await store.append([event()], to: "b", expectedVersion: .noStream)
        await #expect(throws: EventStoreError.self) {
            try await store.append([
                StreamAppend(stream: "a", expectedVersion: .noStream, events: [event()]),
                StreamAppend(stream: "b", expectedVersion: .noStream, events: [event()]),
            ])
        }
        #expect(try await store.read(stream: "a").isEmpty)
        #expect(try await store.lastPosition() == 1)
    }

    @Test func readsByStreamPositionTypeAndCorrelation() async throws {
        let store = try SQLiteEventStore(path: directory.file("log.db"))
        try await store.append([event("x.one", #"{"n":1}"#)], to: "task/1")
        try await store.append(
            [ProposedEvent(type: "x.two", schema: 1, payload: Data("{}".utf8), metadata: .init(actor: "a", correlationID: "r1"))],
            to: "task/2")
        try await store.append([event("x.one", #"{"n":3}"#)], to: "task/1")
        #expect(try await store.read(stream: "task/1").map(\.position) == [1, 3])
        #expect(try await store.read(after: 1).map(\.position) == [2, 3])
        #expect(try await store.read(after: 0, types: ["x.two"]).map(\.position) == [2])
        #expect(try await store.read(streamPrefix: "task/").count == 3)
        #expect(try await store.read(correlationIDs: ["r1"]).map(\.stream) == ["task/2"])
        let events = try await store.read(stream: "task/1")
        #expect(String(decoding: events[1].payload, as: UTF8.self) == #"{"n":3}"#)
    }

    @Test func tailDeliversBacklogThenEventsAppendedByAnotherConnection() async throws {
        let path = directory.file("log.db")
        let store = try SQLiteEventStore(path: path)
        try await store.append([event()], to: "a")
        let writer = try SQLiteEventStore(path: path)  // a second pool on the same file, as another process has
        let received = try await withThrowingTaskGroup(of: [Int64].self) { group in
            group.addTask {
                var positions: [Int64] = []
                for try await event in store.tail(after: 0, pollInterval: .milliseconds(10)) {
                    positions.append(event.position)
                    if positions.count == 3 { break }
                }
                return positions
            }
            try await Task.sleep(for: .milliseconds(50))
            try await writer.append([event(), event()], to: "b")
            return try await group.next()!
        }
        #expect(received == [1, 2, 3])
    }

    @Test func hashChainVerifiesAndLinksEvents() async throws {
        let store = try SQLiteEventStore(path: directory.file("log.db"))
        for index in 0..<25 { try await store.append([event("n", "{\"i\":\(index)}")], to: "s\(index % 3)") }
        #expect(try await store.verifyChain() == 25)
        let events = try await store.read(after: 0)
        #expect(events[0].hash == SQLiteEventStore.chainHash(previous: Data(count: 32), event: events[0]))
        #expect(events[1].hash == SQLiteEventStore.chainHash(previous: events[0].hash, event: events[1]))
        #expect(Set(events.map(\.hash)).count == 25)
    }

    @Test func databaseRefusesUpdateAndDelete() async throws {
        let path = directory.file("log.db")
        let store = try SQLiteEventStore(path: path)
        try await store.append([event()], to: "a")
        let raw = try DatabaseQueue(path: path)
        #expect(throws: DatabaseError.self) {
            try raw.write { db in try db.execute(sql: "UPDATE events SET payload = x'00' WHERE position = 1") }
        }
        #expect(throws: DatabaseError.self) {
            try raw.write { db in try db.execute(sql: "DELETE FROM events") }
        }
        #expect(try await store.verifyChain() == 1)
    }

    @Test func tamperingIsCaughtByTheChain() async throws {
        let path = directory.file("log.db")
        let store = try SQLiteEventStore(path: path)
        try await store.append([event("a", #"{"v":1}"#), event("a", #"{"v":2}"#)], to: "a")
        // Tampering means going around the triggers; the chain still notices.
        let raw = try DatabaseQueue(path: path)
        try await raw.write { db in
            try db.execute(sql: "DROP TRIGGER events_refuse_update")
            try db.execute(sql: #"UPDATE events SET payload = CAST('{"v":9}' AS BLOB) WHERE position = 1"#)
        }
        let error = await #expect(throws: EventStoreError.self) { try await store.verifyChain() }
        #expect(error?.code == .chainBroken)
        #expect(error?.message.contains("position 1") == true)
    }

    @Test func refusesAFileThatIsNotAnEventLog() async throws {
        let garbage = directory.file("garbage.db")
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: URL(fileURLWithPath: garbage))
        let error = #expect(throws: EventStoreError.self) { try SQLiteEventStore(path: garbage) }
        #expect(error?.code == .notAnEventLog)

        let other = directory.file("other.db")
        let queue = try DatabaseQueue(path: other)
        try await queue.write { db in try db.execute(sql: "CREATE TABLE customers (id INTEGER)") }
        try queue.close()
        let bytes = try Data(contentsOf: URL(fileURLWithPath: other))
        let foreign = #expect(throws: EventStoreError.self) { try SQLiteEventStore(path: other) }
        #expect(foreign?.code == .notAnEventLog)
        // Not even switched to WAL: the file is byte for byte what it was, with no -wal beside it.
        #expect(try Data(contentsOf: URL(fileURLWithPath: other)) == bytes)
        #expect(!FileManager.default.fileExists(atPath: other + "-wal"))
        // Nothing was written to the foreign database.
        let tables = try await DatabaseQueue(path: other).read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        #expect(tables == ["customers"])
    }

    @Test func writesAreDurable() async throws {
        let store = try SQLiteEventStore(path: directory.file("log.db"))
        let mode = try await store.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
        let writerSynchronous = try await store.pool.write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
        #expect(writerSynchronous == 2)  // FULL
    }

    @Test func severalStoresOpeningANewFileAtOnceAllWork() async throws {
        let path = directory.file("fresh.db")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask { try await SQLiteEventStore(path: path).append([self.event()], to: "s") }
            }
            try await group.waitForAll()
        }
        #expect(try await SQLiteEventStore(path: path).lastPosition() == 4)
    }

    @Test func concurrentAppendersNeverShareAPosition() async throws {
        let path = directory.file("log.db")
        let stores = try (0..<4).map { _ in try SQLiteEventStore(path: path) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, store) in stores.enumerated() {
                group.addTask {
                    for _ in 0..<20 { try await store.append([self.event()], to: "writer-\(index)") }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await stores[0].lastPosition() == 80)
        #expect(try await stores[0].verifyChain() == 80)
    }
}
