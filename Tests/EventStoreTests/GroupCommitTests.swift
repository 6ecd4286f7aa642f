@testable import EventStore
import Foundation
import GRDB
import Synchronization
import TestSupport
import Testing

/// A hook that writes one row per event into its own table, and refuses any append to a stream named `poison/…`.
struct MarkerHook: AppendHook {
    struct Refused: Error {}

    func registerMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("test-markers") { db in
            try db.execute(sql: "CREATE TABLE markers (position INTEGER PRIMARY KEY, stream TEXT NOT NULL)")
        }
    }

    func didAppend(_ events: [StoredEvent], in db: Database) throws {
        for event in events {
            if event.stream.hasPrefix("poison/") { throw Refused() }
            try db.execute(
                sql: "INSERT INTO markers (position, stream) VALUES (?, ?)", arguments: [event.position, event.stream])
        }
    }
}

@Suite struct GroupCommitTests {
    let directory = TemporaryDirectory("groupcommit")

    func event(_ body: String = "{}") -> ProposedEvent {
        ProposedEvent(type: "thing.happened", schema: 1, payload: Data(body.utf8), metadata: EventMetadata(actor: "test"))
    }

    @Test func concurrentAppendersShareTransactionsAndEachGetsItsOwnEvents() async throws {
        let store = try SQLiteEventStore(path: directory.file("log.db"), hooks: [MarkerHook()])
        let appenders = 64
        let rounds = 5
        let results = try await withThrowingTaskGroup(of: [StoredEvent].self) { group in
            for index in 0..<appenders {
                group.addTask {
                    var mine: [StoredEvent] = []
                    for round in 0..<rounds {
                        mine += try await store.append(
                            [self.event("{\"w\":\(index),\"r\":\(round)}"), self.event()], to: "writer-\(index)")
                    }
                    return mine
                }
            }
            return try await group.reduce(into: [[StoredEvent]]()) { $0.append($1) }
        }
        let total = appenders * rounds * 2
        #expect(results.allSatisfy { $0.count == rounds * 2 })
        // Each caller's events are consecutive, in its stream's version order.
        for mine in results {
            #expect(mine.map(\.version) == Array(1...Int64(rounds * 2)))
            for pair in stride(from: 0, to: mine.count, by: 2) { #expect(mine[pair + 1].position == mine[pair].position + 1) }
        }
        #expect(Set(results.flatMap { $0.map(\.position) }) == Set(1...Int64(total)))
        #expect(try await store.verifyChain() == Int64(total))
        // Fewer transactions than calls: appends that arrived together were committed together.
        #expect(store.groupTransactions.load(ordering: .relaxed) < appenders * rounds)
        let markers = try await store.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM markers") }
        #expect(markers == total)
        // Everything returned is what the file holds.
        let stored = try await store.read(after: 0, limit: total)
        #expect(stored == results.flatMap { $0 }.sorted { $0.position < $1.position })
    }

    @Test func aConflictOrAFailingHookFailsOnlyItsCaller() async throws {
        let store = try SQLiteEventStore(path: directory.file("log.db"), hooks: [MarkerHook()])
        let contenders = 16
        let outcomes = await withTaskGroup(of: (String, EventStoreError.Code?).self) { group in
            for index in 0..<contenders {
                group.addTask {
                    do {
                        try await store.append([self.event()], to: "contested", expectedVersion: .noStream)
                        return ("contested", nil)
                    } catch let error as EventStoreError { return ("contested", error.code) } catch { return ("contested", nil) }
                }
                group.addTask {
                    do {
                        try await store.append([self.event()], to: "own-\(index)", expectedVersion: .noStream)
                        return ("own", nil)
                    } catch let error as EventStoreError { return ("own", error.code) } catch { return ("own", nil) }
                }
                group.addTask {
                    do {
                        try await store.append([
                            StreamAppend(stream: "fine-\(index)", expectedVersion: .noStream, events: [self.event()]),
                            StreamAppend(stream: "poison/\(index)", expectedVersion: .any, events: [self.event()]),
                        ])
                        return ("poison", nil)
                    } catch let error as EventStoreError { return ("poison", error.code) } catch { return ("poison", nil) }
                }
            }
            return await group.reduce(into: [(String, EventStoreError.Code?)]()) { $0.append($1) }
        }
        let contested = outcomes.filter { $0.0 == "contested" }
        #expect(contested.filter { $0.1 == nil }.count == 1)
        #expect(contested.filter { $0.1 == .wrongExpectedVersion }.count == contenders - 1)
        #expect(outcomes.filter { $0.0 == "own" }.allSatisfy { $0.1 == nil })
        #expect(outcomes.filter { $0.0 == "poison" }.allSatisfy { $0.1 == .storage })
        // Nothing of a failed caller is written: no poison stream, no `fine-*` stream that rode with it.
        #expect(try await store.read(streamPrefix: "poison/").isEmpty)
        #expect(try await store.read(streamPrefix: "fine-").isEmpty)
        let total = Int64(1 + contenders)
        #expect(try await store.lastPosition() == total)
        #expect(try await store.verifyChain() == total)
        let markers = try await store.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM markers") }
        #expect(markers == Int(total))
    }

    @Test func theChainHashIsTheDocumentedOne() {
        // Computed independently (Python's hashlib) from the documented canonical form: SHA-256 over 32 zero bytes,
        // then each field as a 4-byte big-endian length and its UTF-8 bytes.
        let event = StoredEvent(
            position: 1, stream: "task/x", version: 1, type: "thing.happened", schema: 1,
            payload: Data(#"{"a":1}"#.utf8), metadata: EventMetadata(actor: "test", correlationID: "r1"),
            recordedAt: Date(timeIntervalSince1970: 1_700_000_000.123), hash: Data())
        let hash = SQLiteEventStore.chainHash(previous: Data(count: 32), event: event)
        #expect(hash.map { String(format: "%02x", $0) }.joined()
            == "e5540aeed8afaaab936224dff6532a8c25a5bac9019351025dcd3619f8cf78d8")
    }

    @Test func aWaiterWakesOnALocalAppend() async throws {
        let store = try SQLiteEventStore(path: directory.file("log.db"))
        try await store.append([event()], to: "a")
        async let woke = store.waitForAppend(after: 1, timeout: .seconds(30))
        try await store.append([event()], to: "a")
        #expect(try await woke == 2)
    }

    @Test func aWaiterWakesOnAnAppendByAnotherStoreOnTheSameFile() async throws {
        let path = directory.file("log.db")
        let store = try SQLiteEventStore(path: path)
        let other = try SQLiteEventStore(path: path)  // a second pool, as another process has
        try await store.append([event()], to: "a")
        let ready = AsyncStream.makeStream(of: Void.self)
        async let woke: Int64 = {
            ready.continuation.yield()
            return try await store.waitForAppend(after: 1, timeout: .seconds(30))
        }()
        for await _ in ready.stream { break }
        try await other.append([event(), event()], to: "b")
        #expect(try await woke == 3)
    }

    @Test func aWaiterReturnsTheLastPositionWhenTheTimeoutPasses() async throws {
        let store = try SQLiteEventStore(path: directory.file("log.db"))
        try await store.append([event()], to: "a")
        #expect(try await store.waitForAppend(after: 1, timeout: .milliseconds(20)) == 1)
        #expect(try await store.waitForAppend(after: 0, timeout: .seconds(30)) == 1)
    }
}
