import Domain
import EventStore
import Foundation
import GRDB

/// The persisted read models: every ``Projection`` stored row by row, updated inside each append transaction.
///
/// Tables: `read_model_rows(projection, key, row JSON)` and `read_model_checkpoints(projection, position)`, plus the
/// task board's indexed side tables (see ``TaskIndex``): `task_queue(priority, submitted_at, task_id)` with exactly the
/// queued tasks and `tasks_by_server(task_id, server)` with the tasks live on a server (dispatching, starting,
/// running). All are written in the append transaction, so they never run ahead of or behind the log.
public struct ReadModels: AppendHook {
    public init() {}

    public func registerMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v1-read-models") { db in
            try db.execute(
                sql: """
                    CREATE TABLE read_model_rows (
                        projection TEXT NOT NULL,
                        key TEXT NOT NULL,
                        row BLOB NOT NULL,
                        PRIMARY KEY (projection, key)
                    ) WITHOUT ROWID;
                    CREATE TABLE read_model_checkpoints (
                        projection TEXT PRIMARY KEY,
                        position INTEGER NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v2-task-index") { db in
            try TaskIndex.create(in: db)
            // Existing logs: fill the side tables from the stored task board (no refold of the log).
            try TaskIndex.fill(from: try ReadModels.load(TaskBoard.self, in: db).0, in: db)
        }
    }

    public func didAppend(_ events: [StoredEvent], in db: Database) throws {
        let recorded = try events.map(Self.decode)
        try Self.update(ServerCapacity.self, with: recorded, in: db)
        let tasks = try Self.update(TaskBoard.self, with: recorded, in: db)
        try TaskIndex.sync(tasks, in: db)
        try Self.update(ChannelSync.self, with: recorded, in: db)
    }

    /// Decodes a stored event into a domain event with its envelope.
    ///
    /// - Throws: ``EventStoreError`` `.unknownEventType` or `.corruptPayload`, naming the position.
    public static func decode(_ event: StoredEvent) throws(EventStoreError) -> RecordedEvent<DomainEvent> {
        do {
            let domain = try DomainEventCodec.decode(
                type: event.type, schema: event.schema, payload: event.payload, position: event.position)
            return RecordedEvent(
                position: event.position, stream: event.stream, version: event.version, recordedAt: event.recordedAt,
                actor: event.metadata.actor, correlationID: event.metadata.correlationID, event: domain)
        } catch {
            throw storeError(error)
        }
    }

    /// The log's error for a payload that does not decode.
    static func storeError(_ error: DomainEventCodec.DecodeError) -> EventStoreError {
        switch error.kind {
        case .unknownEventType: return EventStoreError(.unknownEventType, error.message)
        case .corruptPayload: return EventStoreError(.corruptPayload, error.message)
        }
    }

    /// Loads the rows `events` touch, folds the events into them and writes them back with the checkpoint.
    ///
    /// - Returns: The rows written, by key (`nil`: the row was removed).
    @discardableResult
    static func update<P: Projection>(_: P.Type, with events: [RecordedEvent<DomainEvent>], in db: Database) throws
        -> [String: P.Row?]
    {
        var keys = Set<String>()
        for event in events { keys.formUnion(P.keys(touchedBy: event.event)) }
        guard let last = events.last else { return [:] }
        var partial = P()
        let decoder = FastJSONDecoder()
        let select = try db.cachedStatement(sql: "SELECT row FROM read_model_rows WHERE projection = ? AND key = ?")
        for key in keys {
            if let data = try Data.fetchOne(select, arguments: [P.name, key]) {
                partial.rows[key] = try decoder.decode(P.Row.self, from: data)
            }
        }
        for event in events { partial.apply(event) }
        let encoder = DomainEventCodec.makeEncoder()
        let upsert = try db.cachedStatement(
            sql: "INSERT OR REPLACE INTO read_model_rows (projection, key, row) VALUES (?, ?, ?)")
        let delete = try db.cachedStatement(sql: "DELETE FROM read_model_rows WHERE projection = ? AND key = ?")
        var written: [String: P.Row?] = [:]
        for key in keys {
            if let row = partial.rows[key] {
                try upsert.execute(arguments: [P.name, key, try encoder.encode(row)])
            } else {
                try delete.execute(arguments: [P.name, key])
            }
            written[key] = .some(partial.rows[key])
        }
        try db.cachedStatement(
            sql: "INSERT OR REPLACE INTO read_model_checkpoints (projection, position) VALUES (?, ?)"
        ).execute(arguments: [P.name, last.position])
        return written
    }

    /// Loads a whole stored read model.
    ///
    /// - Returns: The projection and the log position it reflects.
    /// - Throws: A GRDB or decoding error.
    public static func load<P: Projection>(_: P.Type, in db: Database) throws -> (P, Int64) {
        var projection = P()
        let decoder = FastJSONDecoder()
        let rows = try Row.fetchCursor(
            db, sql: "SELECT key, row FROM read_model_rows WHERE projection = ?", arguments: [P.name])
        while let row = try rows.next() {
            let key: String = row[0]
            projection.rows[key] = try row.withUnsafeData(atIndex: 1) { data in
                try decoder.decode(P.Row.self, from: data ?? Data())
            }
        }
        let position =
            try Int64.fetchOne(
                db, sql: "SELECT position FROM read_model_checkpoints WHERE projection = ?", arguments: [P.name]) ?? 0
        return (projection, position)
    }

    /// Loads one row of a stored read model.
    ///
    /// - Throws: A GRDB or decoding error.
    public static func row<P: Projection>(_: P.Type, key: String, in db: Database) throws -> P.Row? {
        guard
            let data = try Data.fetchOne(
                db, sql: "SELECT row FROM read_model_rows WHERE projection = ? AND key = ?", arguments: [P.name, key])
        else { return nil }
        return try FastJSONDecoder().decode(P.Row.self, from: data)
    }

    /// Rows of a read model named by a query that selects one `row` column (in the query's order).
    ///
    /// - Throws: A GRDB or decoding error.
    static func rows<P: Projection>(_: P.Type, sql: String, arguments: StatementArguments, in db: Database) throws
        -> [P.Row]
    {
        let decoder = FastJSONDecoder()
        var result: [P.Row] = []
        let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
        while let row = try rows.next() {
            result.append(try row.withUnsafeData(atIndex: 0) { try decoder.decode(P.Row.self, from: $0 ?? Data()) })
        }
        return result
    }
}

/// The task board's indexed side tables, for a scheduler that must not load every task row.
///
/// - `task_queue(priority, submitted_at, task_id)`: exactly the task-board rows whose status is `queued`;
///   `submitted_at` in Unix milliseconds; read in the order priority descending, submitted ascending, task ID.
/// - `tasks_by_server(task_id, server)`: the rows whose status is dispatching, starting or running, with their server.
///
/// Both are pure functions of the task board (``entries(of:)``), kept in the append transaction by ``sync(_:in:)``
/// and checked by ``TouchstoneLog/verifyReadModels()``.
public enum TaskIndex {
    /// One queued task, as `task_queue` stores it.
    public struct QueueEntry: Hashable, Sendable {
        public var priority: Int
        public var submittedAt: Int64
        public var taskID: String
    }

    /// One task live on a server, as `tasks_by_server` stores it.
    public struct LiveEntry: Hashable, Sendable {
        public var server: String
        public var taskID: String
    }

    /// Whether a status is live on a server.
    public static func isLive(_ status: TaskStatus) -> Bool {
        status == .dispatching || status == .starting || status == .running
    }

    /// The queue entry of a row, if it is queued.
    static func queueEntry(_ row: TaskRow) -> QueueEntry? {
        guard row.status == .queued else { return nil }
        return QueueEntry(
            priority: row.priority, submittedAt: Int64((row.submittedAt.timeIntervalSince1970 * 1000).rounded(.down)),
            taskID: row.taskID.rawValue)
    }

    /// The live entry of a row, if it is live on a server.
    static func liveEntry(_ row: TaskRow) -> LiveEntry? {
        guard isLive(row.status), let server = row.serverID else { return nil }
        return LiveEntry(server: server.rawValue, taskID: row.taskID.rawValue)
    }

    /// What the side tables must hold for a task board.
    public static func entries(of board: TaskBoard) -> (queue: Set<QueueEntry>, live: Set<LiveEntry>) {
        (Set(board.rows.values.compactMap(queueEntry)), Set(board.rows.values.compactMap(liveEntry)))
    }

    static func create(in db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE task_queue (
                    task_id TEXT PRIMARY KEY,
                    priority INTEGER NOT NULL,
                    submitted_at INTEGER NOT NULL
                ) WITHOUT ROWID;
                CREATE INDEX task_queue_order ON task_queue(priority DESC, submitted_at, task_id);
                CREATE TABLE tasks_by_server (
                    task_id TEXT PRIMARY KEY,
                    server TEXT NOT NULL
                ) WITHOUT ROWID;
                CREATE INDEX tasks_by_server_server ON tasks_by_server(server, task_id);
                """)
    }

    static func fill(from board: TaskBoard, in db: Database) throws {
        try sync(board.rows.mapValues { Optional($0) }, in: db)
    }

    /// Rewrites the side-table entries of the given task rows (`nil`: the row is gone).
    static func sync(_ rows: [String: TaskRow?], in db: Database) throws {
        let dropQueued = try db.cachedStatement(sql: "DELETE FROM task_queue WHERE task_id = ?")
        let dropLive = try db.cachedStatement(sql: "DELETE FROM tasks_by_server WHERE task_id = ?")
        let queue = try db.cachedStatement(
            sql: "INSERT INTO task_queue (task_id, priority, submitted_at) VALUES (?, ?, ?)")
        let live = try db.cachedStatement(sql: "INSERT INTO tasks_by_server (task_id, server) VALUES (?, ?)")
        for (key, row) in rows {
            try dropQueued.execute(arguments: [key])
            try dropLive.execute(arguments: [key])
            guard let row else { continue }
            if let entry = queueEntry(row) {
                try queue.execute(arguments: [entry.taskID, entry.priority, entry.submittedAt])
            }
            if let entry = liveEntry(row) { try live.execute(arguments: [entry.taskID, entry.server]) }
        }
    }

    /// The stored side tables.
    static func stored(in db: Database) throws -> (queue: Set<QueueEntry>, live: Set<LiveEntry>) {
        var queue = Set<QueueEntry>()
        let queueRows = try Row.fetchCursor(db, sql: "SELECT priority, submitted_at, task_id FROM task_queue")
        while let row = try queueRows.next() {
            queue.insert(QueueEntry(priority: row[0], submittedAt: row[1], taskID: row[2]))
        }
        var live = Set<LiveEntry>()
        let liveRows = try Row.fetchCursor(db, sql: "SELECT server, task_id FROM tasks_by_server")
        while let row = try liveRows.next() {
            live.insert(LiveEntry(server: row[0], taskID: row[1]))
        }
        return (queue, live)
    }
}
