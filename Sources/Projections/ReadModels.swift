import Domain
import EventStore
import Foundation
import GRDB

/// The persisted read models: every ``Projection`` stored row by row, updated inside each append transaction.
///
/// Tables: `read_model_rows(projection, key, row JSON)` and `read_model_checkpoints(projection, position)`.
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
    }

    public func didAppend(_ events: [StoredEvent], in db: Database) throws {
        let recorded = try events.map(Self.decode)
        try Self.update(ServerCapacity.self, with: recorded, in: db)
        try Self.update(TaskBoard.self, with: recorded, in: db)
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
            switch error.kind {
            case .unknownEventType: throw EventStoreError(.unknownEventType, error.message)
            case .corruptPayload: throw EventStoreError(.corruptPayload, error.message)
            }
        }
    }

    static func update<P: Projection>(_: P.Type, with events: [RecordedEvent<DomainEvent>], in db: Database) throws {
        var keys = Set<String>()
        for event in events { keys.formUnion(P.keys(touchedBy: event.event)) }
        guard let last = events.last else { return }
        var partial = P()
        let decoder = DomainEventCodec.makeDecoder()
        for key in keys {
            if let data = try Data.fetchOne(
                db, sql: "SELECT row FROM read_model_rows WHERE projection = ? AND key = ?", arguments: [P.name, key])
            {
                partial.rows[key] = try decoder.decode(P.Row.self, from: data)
            }
        }
        for event in events { partial.apply(event) }
        let encoder = DomainEventCodec.makeEncoder()
        for key in keys {
            if let row = partial.rows[key] {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO read_model_rows (projection, key, row) VALUES (?, ?, ?)",
                    arguments: [P.name, key, try encoder.encode(row)])
            } else {
                try db.execute(
                    sql: "DELETE FROM read_model_rows WHERE projection = ? AND key = ?", arguments: [P.name, key])
            }
        }
        try db.execute(
            sql: "INSERT OR REPLACE INTO read_model_checkpoints (projection, position) VALUES (?, ?)",
            arguments: [P.name, last.position])
    }

    /// Loads a whole stored read model.
    ///
    /// - Returns: The projection and the log position it reflects.
    /// - Throws: A GRDB or decoding error.
    public static func load<P: Projection>(_: P.Type, in db: Database) throws -> (P, Int64) {
        var projection = P()
        let decoder = DomainEventCodec.makeDecoder()
        for row in try Row.fetchAll(
            db, sql: "SELECT key, row FROM read_model_rows WHERE projection = ?", arguments: [P.name])
        {
            projection.rows[row["key"]] = try decoder.decode(P.Row.self, from: row["row"] as Data)
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
        return try DomainEventCodec.makeDecoder().decode(P.Row.self, from: data)
    }
}
