import Domain
import EventStore
import Foundation
import GRDB

/// The backend's event log with its read models: typed appends of ``DomainEvent``s and typed reads of projections.
public struct TouchstoneLog: Sendable {
    /// The underlying generic store.
    public let store: SQLiteEventStore

    /// Opens (creating if needed) the log at `path`, with the read models as an append hook.
    ///
    /// - Throws: ``EventStoreError`` `.notAnEventLog` for a file that is not ours, `.storage` otherwise.
    public init(path: String, now: @escaping @Sendable () -> Date = { Date() }) throws(EventStoreError) {
        store = try SQLiteEventStore(path: path, hooks: [ReadModels()], now: now)
    }

    /// One event to append, with the stream version it expects.
    public struct Append: Sendable {
        public var event: DomainEvent
        public var expectedVersion: ExpectedVersion
        public var metadata: EventMetadata

        public init(_ event: DomainEvent, expectedVersion: ExpectedVersion = .any, metadata: EventMetadata) {
            self.event = event
            self.expectedVersion = expectedVersion
            self.metadata = metadata
        }
    }

    /// Appends domain events atomically, each to its own stream (see ``DomainEventCodec/stream(of:)``).
    ///
    /// Events of one stream in one call must share one expected version (that of the first).
    ///
    /// - Returns: The stored events.
    /// - Throws: ``EventStoreError`` `.wrongExpectedVersion` on a conflict, `.storage`.
    /// - Parameter conditions: Streams that must be at exactly these versions, though nothing is appended to them
    ///   (e.g. a booking that must not race a drain of its server).
    @discardableResult
    public func append(_ appends: [Append], conditions: [String: Int64] = [:]) async throws(EventStoreError)
        -> [StoredEvent]
    {
        var parts: [StreamAppend] = conditions.sorted { $0.key < $1.key }.map {
            StreamAppend(stream: $0.key, expectedVersion: .exact($0.value), events: [])
        }
        for append in appends {
            let stream = DomainEventCodec.stream(of: append.event)
            let (type, schema, payload) = DomainEventCodec.encode(append.event)
            let proposed = ProposedEvent(type: type, schema: schema, payload: payload, metadata: append.metadata)
            if let index = parts.lastIndex(where: { $0.stream == stream }), index == parts.count - 1 {
                parts[index].events.append(proposed)
            } else {
                parts.append(StreamAppend(stream: stream, expectedVersion: append.expectedVersion, events: [proposed]))
            }
        }
        return try await store.append(parts)
    }

    /// Appends one domain event.
    ///
    /// - Throws: As ``append(_:)``.
    @discardableResult
    public func append(
        _ event: DomainEvent, expectedVersion: ExpectedVersion = .any, metadata: EventMetadata
    ) async throws(EventStoreError) -> StoredEvent {
        try await append([Append(event, expectedVersion: expectedVersion, metadata: metadata)])[0]
    }

    /// The stored read model of a projection, consistent with the log at the returned position.
    ///
    /// - Throws: ``EventStoreError`` `.storage`.
    public func readModel<P: Projection>(_ type: P.Type) async throws(EventStoreError) -> P {
        try await store.read { db in try ReadModels.load(P.self, in: db).0 }
    }

    /// The three stored read models, read in one snapshot.
    ///
    /// - Throws: ``EventStoreError`` `.storage`.
    public func snapshot() async throws(EventStoreError) -> ProjectionSet {
        try await store.read { db in
            let (servers, position) = try ReadModels.load(ServerCapacity.self, in: db)
            return ProjectionSet(
                position: position, servers: servers, tasks: try ReadModels.load(TaskBoard.self, in: db).0,
                channels: try ReadModels.load(ChannelSync.self, in: db).0)
        }
    }

    /// Decoded events after a position.
    ///
    /// - Throws: ``EventStoreError`` `.storage`, `.unknownEventType`, `.corruptPayload` (naming the position).
    public func events(after position: Int64, limit: Int = 1_000) async throws(EventStoreError)
        -> [RecordedEvent<DomainEvent>]
    {
        try await store.read(after: position, limit: limit).map(ReadModels.decode)
    }

    /// Folds the log from position 0 up to `position` (inclusive) into fresh projections: the state "as of" then.
    ///
    /// Reads the rows with one raw statement cursor in one read transaction, decoding each payload in place with
    /// ``FastJSONDecoder`` (no `StoredEvent` is built, the hash is not read: ``SQLiteEventStore/verifyChain()`` checks
    /// it).
    ///
    /// - Throws: ``EventStoreError`` when reading or decoding fails (decoding errors name the position).
    public func replay(upTo position: Int64 = .max) async throws(EventStoreError) -> ProjectionSet {
        try await store.read { db in try Self.fold(db, upTo: position) }
    }

    static func fold(_ db: Database, upTo position: Int64) throws -> ProjectionSet {
        var set = ProjectionSet(position: 0, servers: .init(), tasks: .init(), channels: .init())
        let rows = try Row.fetchCursor(
            db,
            sql: """
                SELECT position, stream, version, type, schema, payload, actor, correlation_id, recorded_at
                FROM events WHERE position <= ? ORDER BY position
                """,
            arguments: [position])
        while let row = try rows.next() {
            let position: Int64 = row[0]
            let type: String = row[3]
            let schema: Int = row[4]
            let event = try row.withUnsafeData(atIndex: 5) { data in
                let result = (data ?? Data()).withUnsafeBytes { bytes in
                    Result { () throws(DomainEventCodec.DecodeError) in
                        try DomainEventCodec.decode(type: type, schema: schema, bytes: bytes, position: position)
                    }
                }
                switch result {
                case .success(let event): return event
                case .failure(let error): throw ReadModels.storeError(error)
                }
            }
            set.apply(
                RecordedEvent(
                    position: position, stream: row[1], version: row[2],
                    recordedAt: Date(timeIntervalSince1970: Double(row[8] as Int64) / 1000), actor: row[6],
                    correlationID: row[7], event: event))
        }
        return set
    }

    /// Rebuilds every projection from position 0 and compares it with the stored read models, and the task board's
    /// side tables (``TaskIndex``) with what the rebuilt board implies.
    ///
    /// - Returns: The names of what differs (projection names, `task_queue`, `tasks_by_server`; empty when all are
    ///   equal) and the position compared at.
    /// - Throws: ``EventStoreError`` when reading or decoding fails.
    public func verifyReadModels() async throws(EventStoreError) -> (mismatched: [String], position: Int64) {
        // Read the stored models, their side tables and the log in one snapshot, folding up to the stored position.
        try await store.read { db in
            let (servers, position) = try ReadModels.load(ServerCapacity.self, in: db)
            let stored = ProjectionSet(
                position: position, servers: servers, tasks: try ReadModels.load(TaskBoard.self, in: db).0,
                channels: try ReadModels.load(ChannelSync.self, in: db).0)
            let storedIndex = try TaskIndex.stored(in: db)
            let rebuilt = try Self.fold(db, upTo: position)
            let rebuiltIndex = TaskIndex.entries(of: rebuilt.tasks)
            var mismatched: [String] = []
            if rebuilt.servers != stored.servers { mismatched.append(ServerCapacity.name) }
            if rebuilt.tasks != stored.tasks { mismatched.append(TaskBoard.name) }
            if rebuilt.channels != stored.channels { mismatched.append(ChannelSync.name) }
            if rebuiltIndex.queue != storedIndex.queue { mismatched.append("task_queue") }
            if rebuiltIndex.live != storedIndex.live { mismatched.append("tasks_by_server") }
            return (mismatched, position)
        }
    }

    // MARK: Indexed reads for the scheduler

    /// Queued tasks in dispatch order: priority descending, then submitted first, then task ID; from the indexed
    /// `task_queue` side table, so the cost grows with `limit`, not with the number of tasks in the history.
    ///
    /// - Throws: ``EventStoreError`` `.storage`.
    public func queuedTasks(limit: Int) async throws(EventStoreError) -> [TaskRow] {
        try await store.read { db in
            try ReadModels.rows(
                TaskBoard.self,
                sql: """
                    SELECT r.row FROM task_queue q
                    JOIN read_model_rows r ON r.projection = ? AND r.key = q.task_id
                    ORDER BY q.priority DESC, q.submitted_at, q.task_id LIMIT ?
                    """,
                arguments: [TaskBoard.name, limit], in: db)
        }
    }

    /// The tasks dispatching, starting or running on one server, by task ID (indexed `tasks_by_server`).
    ///
    /// - Throws: ``EventStoreError`` `.storage`.
    public func liveTasks(on server: ServerID) async throws(EventStoreError) -> [TaskRow] {
        try await store.read { db in
            try ReadModels.rows(
                TaskBoard.self,
                sql: """
                    SELECT r.row FROM tasks_by_server s
                    JOIN read_model_rows r ON r.projection = ? AND r.key = s.task_id
                    WHERE s.server = ? ORDER BY s.task_id
                    """,
                arguments: [TaskBoard.name, server.rawValue], in: db)
        }
    }

    /// Every server's row (the server read model is small: one row per server).
    ///
    /// - Throws: ``EventStoreError`` `.storage`.
    public func servers() async throws(EventStoreError) -> ServerCapacity {
        try await readModel(ServerCapacity.self)
    }

    /// One task's row, `nil` when no such task was submitted.
    ///
    /// - Throws: ``EventStoreError`` `.storage`.
    public func task(_ id: TaskID) async throws(EventStoreError) -> TaskRow? {
        try await store.read { db in try ReadModels.row(TaskBoard.self, key: id.rawValue, in: db) }
    }
}

/// The three projections together, as of one log position.
public struct ProjectionSet: Sendable, Equatable {
    public var position: Int64
    public var servers: ServerCapacity
    public var tasks: TaskBoard
    public var channels: ChannelSync

    public init(position: Int64, servers: ServerCapacity, tasks: TaskBoard, channels: ChannelSync) {
        self.position = position
        self.servers = servers
        self.tasks = tasks
        self.channels = channels
    }

    /// Folds one event into all three.
    public mutating func apply(_ event: RecordedEvent<DomainEvent>) {
        servers.apply(event)
        tasks.apply(event)
        channels.apply(event)
        position = event.position
    }
}
