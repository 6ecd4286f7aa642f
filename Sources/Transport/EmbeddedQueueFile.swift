import Foundation
import GRDB

#if canImport(Glibc)
    import Glibc
#endif

/// One SQLite file of an ``EmbeddedQueueStore``, holding the queues of one group (or, in the single-file layout, all
/// of them): its connection pool and its transactions.
///
/// - Storage: WAL mode, `busy_timeout` 5 seconds (a bounded wait: a process frozen while it holds this file's write
///   lock fails this file's writes after 5 s and never touches another file), `synchronous=FULL` (set after opening:
///   GRDB's `DatabasePool` sets `NORMAL` when it enables WAL), `PRAGMA application_id` =
///   ``EmbeddedQueueStore/applicationID``. At most two reader connections: a queue's reads are short.
final class EmbeddedQueueFile: Sendable {
    /// The file's path.
    let path: String
    let pool: DatabasePool

    /// Opens the file, creating it and its schema when needed.
    ///
    /// - Throws: ``QueueError`` `.notAQueueDatabase` for a file that is not ours; `.storage` when SQLite cannot open,
    ///   configure or migrate it.
    init(path: String) throws(QueueError) {
        self.path = path
        try EmbeddedQueueStore.checkHeader(path)
        // Created owner-only before SQLite opens it (its -wal and -shm files take the same mode).
        let created = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        if created >= 0 { Glibc.close(created) }
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.maximumReaderCount = 2
        configuration.label = "touchstone.queue"
        do {
            pool = try Self.openPool(path: path, configuration: configuration)
        } catch {
            throw EmbeddedQueueStore.wrap(error, "cannot open the queue database at \(path)", path: path)
        }
        try EmbeddedQueueStore.prepare(pool, path: path)
    }

    /// Opens the pool, retrying while another process holds the lock that switching a new file to WAL needs:
    /// SQLite returns SQLITE_BUSY there without calling the busy handler.
    private static func openPool(path: String, configuration: Configuration) throws -> DatabasePool {
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

    func close() { try? pool.close() }

    /// Runs `body` in an `IMMEDIATE` transaction: SQLite's write lock is taken before the first read, so what is read
    /// cannot change before the transaction commits, in any process.
    ///
    /// - Throws: ``QueueError`` (GRDB's errors wrapped as `.storage`), or `CancellationError` when the task is
    ///   cancelled before GRDB runs `body`.
    func write<T: Sendable>(_ message: @autoclosure () -> String, _ body: @escaping @Sendable (Database) throws -> T)
        async throws -> T
    {
        do {
            return try await pool.writeWithoutTransaction { db in
                var result: T?
                try db.inTransaction(.immediate) {
                    result = try body(db)
                    return .commit
                }
                return result!
            }
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw EmbeddedQueueStore.wrap(error, message(), path: path)
        }
    }

    /// Runs `body` in a read-only transaction on a reader connection (no write lock).
    ///
    /// - Throws: ``QueueError``, or `CancellationError` when the task is cancelled before GRDB runs `body`.
    func read<T: Sendable>(_ message: @autoclosure () -> String, _ body: @escaping @Sendable (Database) throws -> T)
        async throws -> T
    {
        do {
            return try await pool.read(body)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw EmbeddedQueueStore.wrap(error, message(), path: path)
        }
    }

    func writeSync(_ message: @autoclosure () -> String, _ body: (Database) throws -> Void) throws(QueueError) {
        do {
            try pool.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    try body(db)
                    return .commit
                }
            }
        } catch {
            throw EmbeddedQueueStore.wrap(error, message(), path: path)
        }
    }

    func readSync<T>(_ message: @autoclosure () -> String, _ body: (Database) throws -> T) throws(QueueError) -> T {
        do {
            return try pool.read(body)
        } catch {
            throw EmbeddedQueueStore.wrap(error, message(), path: path)
        }
    }
}
