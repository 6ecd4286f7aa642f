import Foundation
import GRDB

extension EmbeddedQueueStore {
    /// Refuses a file that is plainly not ours before SQLite touches it (opening a pool switches a database to WAL).
    ///
    /// An empty or missing file is fine: SQLite creates the database. The authoritative check runs again under the
    /// write lock in ``prepare(_:path:)``, since a WAL file can hold a newer header than the database file.
    static func checkHeader(_ path: String) throws(QueueError) {
        guard let handle = FileHandle(forReadingAtPath: path) else { return }
        defer { try? handle.close() }
        guard let header = try? handle.read(upToCount: 100), !header.isEmpty else { return }
        let magic = Array("SQLite format 3\0".utf8)
        guard header.count == 100, header.starts(with: magic) else {
            throw QueueError(
                .notAQueueDatabase, "\(path) is not an SQLite database, so not a Touchstone queue database")
        }
        // The application ID is the big-endian 32-bit integer at offset 68 of the header (SQLite "Database File
        // Format", section 1.3).
        let bytes = Array(header[68..<72])
        let appID = Int32(bitPattern: bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        if appID != 0 && appID != applicationID { throw foreignDatabase(path, appID: appID) }
    }

    /// Sets `synchronous=FULL`, claims or checks the application ID, and migrates the schema.
    ///
    /// A file already prepared is only read: opening it takes no write lock, so it opens while another process
    /// holds that lock (a frozen agent must not stop the backend from opening its other queues).
    static func prepare(_ pool: DatabasePool, path: String) throws(QueueError) {
        do {
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            // A failed look (a file still being created by another process) falls through to the locked path.
            let ready = try? pool.read { db in
                try Int32.fetchOne(db, sql: "PRAGMA application_id") == applicationID
                    && migrator.hasCompletedMigrations(db)
            }
            if ready == true { return }
        } catch {
            throw wrap(error, "cannot prepare the queue database at \(path)", path: path)
        }
        do {
            try pool.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    let appID = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
                    let tableCount =
                        try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master WHERE type = 'table'") ?? 0
                    if appID != applicationID && (appID != 0 || tableCount > 0) {
                        throw foreignDatabase(path, appID: appID)
                    }
                    if appID == 0 { try db.execute(sql: "PRAGMA application_id = \(applicationID)") }
                    return .commit
                }
            }
        } catch {
            throw wrap(error, "cannot prepare the queue database at \(path)", path: path)
        }
        // Two processes creating the file at once may both try the first migration; the loser's transaction fails
        // (the table exists) and rolls back, and its retry finds the migration applied.
        var attempt = 0
        while true {
            do {
                try migrator.migrate(pool)
                return
            } catch {
                attempt += 1
                if attempt >= 3 { throw wrap(error, "cannot migrate the queue database at \(path)", path: path) }
            }
        }
    }

    private static func foreignDatabase(_ path: String, appID: Int32) -> QueueError {
        let hex = String(UInt32(bitPattern: appID), radix: 16)
        return QueueError(
            .notAQueueDatabase,
            "\(path) is an SQLite database of another application (application_id 0x\(hex)), "
                + "not a Touchstone queue database")
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-queues") { db in
            // Times are milliseconds since 1970 from the store's clock. `visible_at_ms > now` means in flight;
            // a message never received has 0. `receipt_handle` is the handle of the latest receive only.
            try db.execute(
                sql: """
                    CREATE TABLE queues (
                        name TEXT PRIMARY KEY NOT NULL,
                        visibility_timeout_ms INTEGER NOT NULL,
                        maximum_message_size INTEGER NOT NULL,
                        next_sequence INTEGER NOT NULL DEFAULT 1,
                        created_at_ms INTEGER NOT NULL
                    );
                    CREATE TABLE messages (
                        id INTEGER PRIMARY KEY,
                        queue TEXT NOT NULL REFERENCES queues(name) ON DELETE CASCADE,
                        sequence INTEGER NOT NULL,
                        message_id TEXT NOT NULL,
                        group_id TEXT NOT NULL,
                        deduplication_id TEXT NOT NULL,
                        sent_at_ms INTEGER NOT NULL,
                        visible_at_ms INTEGER NOT NULL DEFAULT 0,
                        receive_count INTEGER NOT NULL DEFAULT 0,
                        receipt_handle TEXT,
                        body TEXT NOT NULL,
                        UNIQUE (queue, sequence)
                    );
                    CREATE INDEX messages_by_group ON messages(queue, group_id, sequence, visible_at_ms);
                    CREATE UNIQUE INDEX messages_by_receipt ON messages(receipt_handle)
                        WHERE receipt_handle IS NOT NULL;
                    CREATE TABLE deduplication (
                        queue TEXT NOT NULL REFERENCES queues(name) ON DELETE CASCADE,
                        deduplication_id TEXT NOT NULL,
                        message_id TEXT NOT NULL,
                        sequence INTEGER NOT NULL,
                        expires_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (queue, deduplication_id)
                    ) WITHOUT ROWID;
                    CREATE INDEX deduplication_by_expiry ON deduplication(queue, expires_at_ms);
                    """)
        }
        return migrator
    }
}
