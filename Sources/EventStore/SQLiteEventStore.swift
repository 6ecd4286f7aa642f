import Crypto
import FileSignals
import Foundation
import GRDB
import Metrics
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The append-only event log, one SQLite file in WAL mode, shared by several processes.
///
/// - Each event has a global `position`, a `stream` and a `version` within it; an append names the version it expects
///   (``ExpectedVersion``) and fails with ``EventStoreError/Code/wrongExpectedVersion`` on a conflict.
/// - Each event's `hash` is SHA-256 over the previous hash and the event's canonical bytes (``canonicalBytes(of:)``);
///   ``verifyChain()`` checks the whole chain.
/// - Triggers make the database itself refuse `UPDATE` and `DELETE` on events.
/// - Durability: `synchronous=FULL`, set after opening because GRDB's `DatabasePool` sets NORMAL when it enables WAL.
/// - Concurrency: writes take SQLite's write lock with `BEGIN IMMEDIATE`; other processes wait up to the busy timeout.
/// - Group commit: concurrent ``append(_:)`` calls of one store are queued to a single writer loop, which commits
///   everything that arrived while its previous transaction committed in ONE transaction (one `fsync`), each caller
///   inside its own SAVEPOINT: a caller's expected-version conflict or hook error rolls back only that caller. No
///   timer: an append arriving at an idle store is committed at once. Every call returns only after its commit.
/// - Notification: ``waitForAppend(after:timeout:)`` wakes at once after a commit by this store, and within
///   milliseconds after a commit by another process or store on the same file (inotify, see `DatabaseFileWatcher`).
public final class SQLiteEventStore: Sendable {
    /// `PRAGMA application_id` of a Touchstone event log ("TSEL").
    public static let applicationID: Int32 = 0x5453_454C

    /// The path of the SQLite file.
    public let path: String
    let pool: DatabasePool
    private let hooks: [any AppendHook]
    private let now: @Sendable () -> Date
    /// Appends waiting for the writer loop, and whether the loop runs.
    private let writeQueue = Mutex(WriteQueue())
    /// Write transactions the writer loop ran (each holds one or more callers' appends); tests read it.
    let groupTransactions = Atomic<Int>(0)
    /// Bumped after each local commit and by ``watcher`` on a write by anyone else.
    private let appendSignal = ChangeSignal()
    /// Started by the first ``waitForAppend(after:timeout:)``; `nil` before, or when inotify is unavailable.
    private let watcher = Mutex(WatcherState())

    private struct WriteQueue {
        var pending: [PendingAppend] = []
        var writing = false
    }

    private struct PendingAppend: Sendable {
        let appends: [StreamAppend]
        let continuation: CheckedContinuation<Result<[StoredEvent], EventStoreError>, Never>
    }

    private struct WatcherState {
        var started = false
        var watcher: DatabaseFileWatcher?
    }

    /// Opens (creating if needed) the event log at `path`.
    ///
    /// - Parameters:
    ///   - path: The SQLite file. Its directory must exist.
    ///   - hooks: Code run inside each append transaction (read models); their tables are migrated here.
    ///   - busyTimeout: How long a write waits for another process's lock before failing, in seconds.
    ///   - now: The clock for `recorded_at`; tests inject one.
    /// - Throws: ``EventStoreError`` `.notAnEventLog` when the file is not SQLite or belongs to another application;
    ///   `.storage` when SQLite cannot open or migrate it (permissions, disk full).
    public init(
        path: String,
        hooks: [any AppendHook] = [],
        busyTimeout: Double = 10,
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws(EventStoreError) {
        self.path = path
        self.hooks = hooks
        self.now = now
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        try Self.refuseForeignFile(path)
        do {
            pool = try Self.openPool(path: path, configuration: configuration)
            // After opening: enabling WAL resets the writer to NORMAL, so FULL is set on it afterwards.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_NOTADB {
            throw EventStoreError(.notAnEventLog, "\(path) is not an SQLite database, so not a Touchstone event log")
        } catch {
            throw EventStoreError(.storage, "cannot open the event log at \(path)", underlying: error)
        }
        try Self.migrate(pool, path: path, hooks: hooks)
    }

    /// Refuses an existing file that is not ours **before** opening it for writing: opening a pool would switch a
    /// foreign SQLite database to WAL mode, which changes it.
    static func refuseForeignFile(_ path: String) throws(EventStoreError) {
        guard let handle = FileHandle(forReadingAtPath: path) else { return }  // absent: it will be created
        let header = (try? handle.read(upToCount: 16)) ?? Data()
        try? handle.close()
        if header.isEmpty { return }
        guard header == Data("SQLite format 3\0".utf8) else {
            throw EventStoreError(.notAnEventLog, "\(path) is not an SQLite database, so not a Touchstone event log")
        }
        do {
            var readOnly = Configuration()
            readOnly.readonly = true
            let queue = try DatabaseQueue(path: path, configuration: readOnly)
            let (appID, tables) = try queue.read { db in
                (
                    try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0,
                    try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master WHERE type = 'table'") ?? 0
                )
            }
            try queue.close()
            if appID != applicationID && (appID != 0 || tables > 0) {
                throw EventStoreError(
                    .notAnEventLog,
                    "\(path) is an SQLite database of another application (application_id \(appID)), not a Touchstone event log")
            }
        } catch let error as EventStoreError {
            throw error
        } catch {
            // Unreadable here (e.g. a WAL file needing recovery): the full open below decides.
        }
    }

    /// Opens the pool, retrying while another process holds the lock that switching a new file to WAL needs:
    /// SQLite returns SQLITE_BUSY there without calling the busy handler (up to 5 seconds).
    static func openPool(path: String, configuration: Configuration) throws -> DatabasePool {
        var attempts = 0
        while true {
            do {
                return try DatabasePool(path: path, configuration: configuration)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && attempts < 500 {
                attempts += 1
                usleep(10_000)
            }
        }
    }

    private static func migrate(_ pool: DatabasePool, path: String, hooks: [any AppendHook]) throws(EventStoreError) {
        do {
            try pool.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    let appID = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
                    let tableCount = try Int.fetchOne(
                        db, sql: "SELECT count(*) FROM sqlite_master WHERE type = 'table'") ?? 0
                    if appID != applicationID && (appID != 0 || tableCount > 0) {
                        throw EventStoreError(
                            .notAnEventLog,
                            "\(path) is an SQLite database of another application (application_id \(appID)), "
                                + "not a Touchstone event log")
                    }
                    if appID == 0 { try db.execute(sql: "PRAGMA application_id = \(applicationID)") }
                    return .commit
                }
            }
            var migrator = DatabaseMigrator()
            migrator.registerMigration("v1-events") { db in
                try db.execute(
                    sql: """
                        CREATE TABLE events (
                            position INTEGER PRIMARY KEY,
                            stream TEXT NOT NULL,
                            version INTEGER NOT NULL,
                            type TEXT NOT NULL,
                            schema INTEGER NOT NULL,
                            payload BLOB NOT NULL,
                            actor TEXT NOT NULL,
                            correlation_id TEXT,
                            causation_id TEXT,
                            recorded_at INTEGER NOT NULL,
                            hash BLOB NOT NULL,
                            UNIQUE (stream, version)
                        );
                        CREATE INDEX events_type ON events(type, position);
                        CREATE INDEX events_correlation ON events(correlation_id) WHERE correlation_id IS NOT NULL;
                        CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
                        BEGIN SELECT RAISE(ABORT, 'the event log is append-only: UPDATE refused'); END;
                        CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
                        BEGIN SELECT RAISE(ABORT, 'the event log is append-only: DELETE refused'); END;
                        """)
            }
            for hook in hooks { hook.registerMigrations(&migrator) }
            // Several processes may open a new file at once; the loser of a race sees the tables the winner made
            // and, on the next try, finds the migrations recorded as applied.
            var attempt = 0
            while true {
                do {
                    try migrator.migrate(pool)
                    break
                } catch where attempt < 20 {
                    attempt += 1
                    usleep(20_000)
                }
            }
        } catch let error as EventStoreError {
            throw error
        } catch {
            throw Self.wrap(error, "cannot prepare the event log at \(path)")
        }
    }

    static func wrap(_ error: any Error, _ message: String) -> EventStoreError {
        if let error = error as? EventStoreError { return error }
        if let db = error as? DatabaseError, db.resultCode == .SQLITE_NOTADB {
            return EventStoreError(.notAnEventLog, message, underlying: error)
        }
        return EventStoreError(.storage, message, underlying: error)
    }

    // MARK: Appending

    /// Appends events to one stream, atomically.
    ///
    /// - Parameters:
    ///   - events: The events, in order; an empty array appends nothing and returns `[]`.
    ///   - stream: The stream name (1–200 characters).
    ///   - expectedVersion: The version the stream must be at (see ``ExpectedVersion``).
    /// - Returns: The stored events with their positions, versions, times and hashes.
    /// - Throws: ``EventStoreError`` `.wrongExpectedVersion` on a conflict, `.invalidStream`, `.storage`, or the error
    ///   an ``AppendHook`` threw (the append is then rolled back).
    @discardableResult
    public func append(
        _ events: [ProposedEvent], to stream: String, expectedVersion: ExpectedVersion = .any
    ) async throws(EventStoreError) -> [StoredEvent] {
        try await append([StreamAppend(stream: stream, expectedVersion: expectedVersion, events: events)])
    }

    /// Appends to several streams atomically: all of it is written, or none.
    ///
    /// Calls made while the store's previous transaction commits are committed together in its next one (group
    /// commit); each call's part runs in its own SAVEPOINT with its own expected-version checks and hooks, so a
    /// conflict fails only that call. Returns once the transaction holding this call is durable.
    ///
    /// - Parameter appends: Each stream with its expected version and events, appended in the order given.
    /// - Returns: All stored events in position order.
    /// - Throws: As ``append(_:to:expectedVersion:)``.
    @discardableResult
    public func append(_ appends: [StreamAppend]) async throws(EventStoreError) -> [StoredEvent] {
        for part in appends where part.stream.isEmpty || part.stream.count > 200 {
            throw EventStoreError(.invalidStream, "stream names are 1–200 characters, got \(part.stream.count)")
        }
        guard appends.contains(where: { !$0.events.isEmpty }) else { return [] }
        // Append latency as the caller sees it: queueing behind the group commit included (issue 15's metrics).
        let started = ContinuousClock.now
        defer {
            Metrics.Timer(label: "touchstone_log_append_seconds").recordNanoseconds(
                (ContinuousClock.now - started).wholeNanoseconds)
        }
        let result = await withCheckedContinuation { continuation in
            let startWriter = writeQueue.withLock { queue in
                queue.pending.append(PendingAppend(appends: appends, continuation: continuation))
                if queue.writing { return false }
                queue.writing = true
                return true
            }
            if startWriter { Task { await self.writeLoop() } }
        }
        return try result.get()
    }

    /// The single writer: commits every pending append as one group, until none is pending.
    private func writeLoop() async {
        while true {
            let group = writeQueue.withLock { queue in
                if queue.pending.isEmpty { queue.writing = false }
                defer { queue.pending.removeAll(keepingCapacity: true) }
                return queue.pending
            }
            if group.isEmpty { return }
            let results = await commit(group.map(\.appends))
            groupTransactions.add(1, ordering: .relaxed)
            for (pending, result) in zip(group, results) { pending.continuation.resume(returning: result) }
            if results.contains(where: { if case .success(let events) = $0 { !events.isEmpty } else { false } }) {
                appendSignal.bump()
            }
        }
    }

    /// Commits a group of callers' appends in one write transaction, one SAVEPOINT per caller.
    ///
    /// - Returns: One result per caller, in order: its stored events, or the error that rolled back only its part
    ///   (all fail alike when the transaction itself cannot begin or commit).
    private func commit(_ group: [[StreamAppend]]) async -> [Result<[StoredEvent], EventStoreError>] {
        let now = self.now
        let hooks = self.hooks
        do {
            return try await pool.writeWithoutTransaction { db in
                var results: [Result<[StoredEvent], EventStoreError>] = []
                try db.inTransaction(.immediate) {
                    results = try Self.appendGroup(group, db: db, now: now(), hooks: hooks)
                    return .commit
                }
                return results
            }
        } catch {
            let failure = Self.wrap(error, "append failed")
            return group.map { _ in .failure(failure) }
        }
    }

    /// The last position and hash (0 and 32 zero bytes for an empty log).
    typealias ChainTip = (position: Int64, hash: Data)

    static func appendGroup(
        _ group: [[StreamAppend]], db: Database, now: Date, hooks: [any AppendHook]
    ) throws -> [Result<[StoredEvent], EventStoreError>] {
        let last = try Row.fetchOne(db, sql: "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
        var tip: ChainTip = (last?["position"] ?? 0, last?["hash"] ?? Data(count: 32))
        let recordedAt = Date(timeIntervalSince1970: (now.timeIntervalSince1970 * 1000).rounded(.down) / 1000)
        var results: [Result<[StoredEvent], EventStoreError>] = []
        results.reserveCapacity(group.count)
        for appends in group {
            var stored: [StoredEvent] = []
            do {
                if group.count == 1 {
                    // Alone in its transaction: a failure rolls the whole transaction back, no savepoint needed.
                    stored = try appendInTransaction(appends, db: db, tip: tip, recordedAt: recordedAt)
                    for hook in hooks { try hook.didAppend(stored, in: db) }
                } else {
                    try db.inSavepoint {
                        stored = try appendInTransaction(appends, db: db, tip: tip, recordedAt: recordedAt)
                        for hook in hooks { try hook.didAppend(stored, in: db) }
                        return .commit
                    }
                }
            } catch {
                if group.count == 1 { throw error }
                results.append(.failure(wrap(error, "append failed")))
                continue
            }
            if let newest = stored.last { tip = (newest.position, newest.hash) }
            results.append(.success(stored))
        }
        return results
    }

    private static func appendInTransaction(
        _ appends: [StreamAppend], db: Database, tip: ChainTip, recordedAt: Date
    ) throws -> [StoredEvent] {
        var position = tip.position
        var previousHash = tip.hash
        let recordedAtMilliseconds = Self.milliseconds(recordedAt)
        var stored: [StoredEvent] = []
        stored.reserveCapacity(appends.reduce(0) { $0 + $1.events.count })
        var versions: [String: Int64] = [:]
        let versionQuery = try db.cachedStatement(sql: "SELECT max(version) FROM events WHERE stream = ?")
        let insert = try db.cachedStatement(
            sql: """
                INSERT INTO events (position, stream, version, type, schema, payload, actor,
                    correlation_id, causation_id, recorded_at, hash)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        for part in appends {
            var version: Int64
            if let known = versions[part.stream] {
                version = known
            } else {
                version = try Int64.fetchOne(versionQuery, arguments: [part.stream]) ?? 0
            }
            switch part.expectedVersion {
            case .any:
                break
            case .noStream:
                if version != 0 {
                    throw EventStoreError(
                        .wrongExpectedVersion, "stream \(part.stream) already exists at version \(version)")
                }
            case .exact(let expected):
                if expected != version {
                    throw EventStoreError(
                        .wrongExpectedVersion,
                        "stream \(part.stream) is at version \(version), the append expected \(expected)")
                }
            }
            for event in part.events {
                position += 1
                version += 1
                var candidate = StoredEvent(
                    position: position, stream: part.stream, version: version, type: event.type,
                    schema: event.schema, payload: event.payload, metadata: event.metadata,
                    recordedAt: recordedAt, hash: Data())
                candidate.hash = chainHash(previous: previousHash, event: candidate)
                previousHash = candidate.hash
                try insert.execute(arguments: [
                    candidate.position, candidate.stream, candidate.version, candidate.type, candidate.schema,
                    candidate.payload, candidate.metadata.actor, candidate.metadata.correlationID,
                    candidate.metadata.causationID, recordedAtMilliseconds, candidate.hash,
                ])
                stored.append(candidate)
            }
            versions[part.stream] = version
        }
        return stored
    }

    // MARK: Hash chain

    /// The bytes an event's hash covers: position, stream, version, type, schema, time (ms), metadata and payload,
    /// each length-prefixed so that no two events share a canonical form.
    public static func canonicalBytes(of event: StoredEvent) -> Data {
        var data = Data()
        forEachCanonicalPiece(of: event) { data.append(contentsOf: $0) }
        return data
    }

    /// SHA-256 of `previous` followed by the event's canonical bytes.
    public static func chainHash(previous: Data, event: StoredEvent) -> Data {
        var hasher = SHA256()
        hasher.update(data: previous)
        forEachCanonicalPiece(of: event) { hasher.update(bufferPointer: $0) }
        return Data(hasher.finalize())
    }

    /// Feeds the canonical bytes to `sink` piece by piece (length prefixes and fields), without building them.
    private static func forEachCanonicalPiece(of event: StoredEvent, _ sink: (UnsafeRawBufferPointer) -> Void) {
        func field(_ bytes: UnsafeRawBufferPointer) {
            var count = UInt32(bytes.count).bigEndian
            withUnsafeBytes(of: &count) { sink($0) }
            sink(bytes)
        }
        func field(_ text: String) {
            var text = text
            text.withUTF8 { field(UnsafeRawBufferPointer($0)) }
        }
        field(String(event.position))
        field(event.stream)
        field(String(event.version))
        field(event.type)
        field(String(event.schema))
        field(String(milliseconds(event.recordedAt)))
        field(event.metadata.actor)
        field(event.metadata.correlationID ?? "")
        field(event.metadata.causationID ?? "")
        event.payload.withUnsafeBytes { field($0) }
    }

    /// Walks the whole log and checks every hash against its predecessor.
    ///
    /// - Returns: The number of events checked.
    /// - Throws: ``EventStoreError`` `.chainBroken` naming the first position that does not verify (or a gap in
    ///   positions); `.storage` when reading fails.
    @discardableResult
    public func verifyChain() async throws(EventStoreError) -> Int64 {
        var previous = Data(count: 32)
        var expectedPosition: Int64 = 1
        var after: Int64 = 0
        while true {
            let batch = try await read(after: after, limit: 2_000)
            if batch.isEmpty { return expectedPosition - 1 }
            for event in batch {
                guard event.position == expectedPosition else {
                    throw EventStoreError(.chainBroken, "position \(expectedPosition) is missing (next is \(event.position))")
                }
                guard Self.chainHash(previous: previous, event: event) == event.hash else {
                    throw EventStoreError(.chainBroken, "the hash of position \(event.position) does not verify")
                }
                previous = event.hash
                expectedPosition += 1
            }
            after = batch.last!.position
        }
    }

    // MARK: Reading

    /// Events with `position > after`, in position order.
    ///
    /// - Parameters:
    ///   - after: Exclusive lower bound; 0 reads from the start.
    ///   - limit: At most this many events.
    ///   - types: When given, only events of these types.
    /// - Throws: ``EventStoreError`` `.storage`.
    public func read(after: Int64, limit: Int = 1_000, types: [String]? = nil) async throws(EventStoreError) -> [StoredEvent] {
        do {
            return try await pool.read { db in
                if let types {
                    let marks = types.map { _ in "?" }.joined(separator: ",")
                    var arguments: StatementArguments = [after]
                    arguments += StatementArguments(types)
                    arguments += [limit]
                    return try Self.fetch(
                        db,
                        "SELECT * FROM events WHERE position > ? AND type IN (\(marks)) ORDER BY position LIMIT ?",
                        arguments)
                }
                return try Self.fetch(
                    db, "SELECT * FROM events WHERE position > ? ORDER BY position LIMIT ?", [after, limit])
            }
        } catch {
            throw Self.wrap(error, "cannot read the event log")
        }
    }

    /// Every event of one stream, in version order (optionally only up to a global position).
    ///
    /// - Throws: ``EventStoreError`` `.storage`.
    public func read(stream: String, upTo position: Int64 = .max) async throws(EventStoreError) -> [StoredEvent] {
        do {
            return try await pool.read { db in
                try Self.fetch(
                    db, "SELECT * FROM events WHERE stream = ? AND position <= ? ORDER BY version",
                    [stream, position])
            }
        } catch {
            throw Self.wrap(error, "cannot read stream \(stream)")
        }
    }

    /// Events of every stream whose name starts with `prefix` (e.g. `task/`), in position order.
    ///
    /// - Throws: ``EventStoreError`` `.storage`.
    public func read(streamPrefix prefix: String, after: Int64 = 0, limit: Int = 10_000) async throws(EventStoreError)
        -> [StoredEvent]
    {
        do {
            return try await pool.read { db in
                try Self.fetch(
                    db,
                    "SELECT * FROM events WHERE substr(stream, 1, ?) = ? AND position > ? ORDER BY position LIMIT ?",
                    [prefix.utf8.count, prefix, after, limit])
            }
        } catch {
            throw Self.wrap(error, "cannot read streams \(prefix)*")
        }
    }

    /// Every event that carries one of these correlation IDs (request IDs), in position order.
    ///
    /// - Throws: ``EventStoreError`` `.storage`.
    public func read(correlationIDs: [String]) async throws(EventStoreError) -> [StoredEvent] {
        guard !correlationIDs.isEmpty else { return [] }
        do {
            return try await pool.read { db in
                let marks = correlationIDs.map { _ in "?" }.joined(separator: ",")
                return try Self.fetch(
                    db, "SELECT * FROM events WHERE correlation_id IN (\(marks)) ORDER BY position",
                    StatementArguments(correlationIDs))
            }
        } catch {
            throw Self.wrap(error, "cannot read the event log")
        }
    }

    /// The current version of a stream: 0 when it has no events.
    ///
    /// - Throws: ``EventStoreError`` `.storage`.
    public func version(of stream: String) async throws(EventStoreError) -> Int64 {
        do {
            return try await pool.read { db in
                try Int64.fetchOne(db, sql: "SELECT max(version) FROM events WHERE stream = ?", arguments: [stream]) ?? 0
            }
        } catch {
            throw Self.wrap(error, "cannot read stream \(stream)")
        }
    }

    /// The position of the last event: 0 for an empty log.
    ///
    /// - Throws: ``EventStoreError`` `.storage`.
    public func lastPosition() async throws(EventStoreError) -> Int64 {
        do {
            return try await pool.read { db in
                try Int64.fetchOne(db, sql: "SELECT max(position) FROM events") ?? 0
            }
        } catch {
            throw Self.wrap(error, "cannot read the event log")
        }
    }

    /// The first position whose event was recorded at or after `date`, minus one: the position "as of" that time.
    ///
    /// - Throws: ``EventStoreError`` `.storage`.
    public func lastPosition(before date: Date) async throws(EventStoreError) -> Int64 {
        do {
            return try await pool.read { db in
                try Int64.fetchOne(
                    db, sql: "SELECT max(position) FROM events WHERE recorded_at <= ?",
                    arguments: [Self.milliseconds(date)]) ?? 0
            }
        } catch {
            throw Self.wrap(error, "cannot read the event log")
        }
    }

    /// Runs a read-only closure on a consistent snapshot of the database (log and read models together).
    ///
    /// - Throws: ``EventStoreError`` `.storage`, or whatever `body` throws, wrapped.
    public func read<T: Sendable>(_ body: @Sendable @escaping (Database) throws -> T) async throws(EventStoreError) -> T {
        do {
            return try await pool.read(body)
        } catch {
            throw Self.wrap(error, "read failed")
        }
    }

    /// Waits until the log holds an event after `position`, then returns the last position.
    ///
    /// Wakes at once after a commit by this store, and within a few milliseconds after a commit by another process or
    /// another `SQLiteEventStore` on the same file: the first call starts a `DatabaseFileWatcher` (one thread,
    /// inotify on the file and its `-wal`, stopped when the store is deinitialised). Without inotify it still
    /// re-checks when `timeout` ends, so callers looping on it degrade to polling at that interval.
    ///
    /// - Parameters:
    ///   - position: Returns as soon as the last position is greater than this.
    ///   - timeout: The longest wait; the task's cancellation also ends it.
    /// - Returns: The last position: greater than `position` unless the timeout passed or the task was cancelled.
    /// - Throws: ``EventStoreError`` `.storage` when the log cannot be read.
    public func waitForAppend(after position: Int64, timeout: Duration) async throws(EventStoreError) -> Int64 {
        startWatcher()
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            // Read the generation before looking, so a commit between the look and the wait is never missed.
            let generation = appendSignal.generation
            let last = try await lastPosition()
            if last > position || Task.isCancelled { return last }
            let remaining = deadline - clock.now
            if remaining <= .zero { return last }
            await appendSignal.wait(after: generation, timeout: remaining)
        }
    }

    /// The last positions as they grow: each element is a last position greater than the previous element (the first
    /// is greater than `position`). Built on ``waitForAppend(after:timeout:)``; never ends by itself (cancel the
    /// consuming task); a read error ends it by throwing.
    public func appends(after position: Int64) -> AsyncThrowingStream<Int64, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                var seen = position
                do {
                    while !Task.isCancelled {
                        let last = try await self.waitForAppend(after: seen, timeout: .seconds(60))
                        if last > seen {
                            seen = last
                            continuation.yield(last)
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    private func startWatcher() {
        watcher.withLock { state in
            guard !state.started else { return }
            state.started = true
            let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            state.watcher = try? DatabaseFileWatcher(databasePath: resolved, signal: appendSignal)
        }
    }

    deinit {
        watcher.withLock { $0.watcher?.stop() }
        appendSignal.close()
    }

    /// A tail of the log: every event after `position`, then new ones as they are appended by any process.
    ///
    /// The sequence never ends by itself; cancel the consuming task to stop it. New events are awaited with
    /// ``waitForAppend(after:timeout:)``, so they arrive at once (this process) or within milliseconds (another one).
    ///
    /// - Parameters:
    ///   - position: Exclusive start position.
    ///   - pollInterval: The longest wait before looking again even without a change notice (the fallback when
    ///     inotify is unavailable).
    public func tail(after position: Int64, pollInterval: Duration = .seconds(1)) -> EventTail {
        EventTail(store: self, after: position, pollInterval: pollInterval)
    }

    static func fetch(_ db: Database, _ sql: String, _ arguments: StatementArguments) throws -> [StoredEvent] {
        try Row.fetchAll(db, sql: sql, arguments: arguments).map(decodeRow)
    }

    static func decodeRow(_ row: Row) -> StoredEvent {
        StoredEvent(
            position: row["position"], stream: row["stream"], version: row["version"], type: row["type"],
            schema: row["schema"], payload: row["payload"],
            metadata: EventMetadata(
                actor: row["actor"], correlationID: row["correlation_id"], causationID: row["causation_id"]),
            recordedAt: Date(timeIntervalSince1970: Double(row["recorded_at"] as Int64) / 1000),
            hash: row["hash"])
    }

    static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    }
}

/// An `AsyncSequence` of stored events: first the backlog after a position, then each new event as it arrives.
public struct EventTail: AsyncSequence, Sendable {
    public typealias Element = StoredEvent
    let store: SQLiteEventStore
    let after: Int64
    let pollInterval: Duration

    public struct AsyncIterator: AsyncIteratorProtocol {
        let store: SQLiteEventStore
        var position: Int64
        let pollInterval: Duration
        var buffer: [StoredEvent] = []

        public mutating func next() async throws -> StoredEvent? {
            while buffer.isEmpty {
                try Task.checkCancellation()
                buffer = try await store.read(after: position, limit: 500)
                if buffer.isEmpty { _ = try await store.waitForAppend(after: position, timeout: pollInterval) }
            }
            let event = buffer.removeFirst()
            position = event.position
            return event
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(store: store, position: after, pollInterval: pollInterval)
    }
}
