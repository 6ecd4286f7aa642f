import FileSignals
import Foundation
import GRDB
import Logging

/// One SQLite file holding many named FIFO queues with SQS FIFO semantics, shared by the processes of one host.
///
/// The backend and the agents of one host open the same file; each opens its own store. Every write runs in an
/// `IMMEDIATE` transaction, so SQLite's write lock makes claims atomic across processes: two receivers never get the
/// same message. Long polls wake within milliseconds of a write by any process, through inotify on the file's
/// directory (see ``EmbeddedQueue/receive(maxMessages:waitTime:visibilityTimeout:)``).
///
/// - Storage: WAL mode, `busy_timeout` 5 seconds, `synchronous=FULL` (set after opening: GRDB's `DatabasePool` sets
///   `NORMAL` when it enables WAL), `PRAGMA application_id` = ``applicationID``.
/// - Clock: the injected `now` stamps messages and decides deduplication windows and visibility timeouts; the
///   long-poll wait itself runs on the real monotonic clock.
/// - Lifetime: the store runs one watcher thread, stopped by ``close()`` or when the store is deinitialised.
public final class EmbeddedQueueStore: Sendable {
    /// `PRAGMA application_id` of a Touchstone queue database ("TSQU").
    public static let applicationID: Int32 = 0x5453_5155

    /// How often a waiting long poll re-checks the queue when no change was signalled: a safety net for a commit
    /// slower than the watcher's follow-ups, and the wake-up for an injected clock that jumps. 1 second while the
    /// watcher runs (each re-check costs about 1 ms of CPU, so 250 ms would cost an idle poll about 0.5 % of a core),
    /// 250 ms when inotify could not be set up. Visibility timeouts that expire during a wait are waited for exactly.
    let recheckInterval: Duration

    /// The SQLite file's path, as given.
    public let path: String
    let pool: DatabasePool
    let now: @Sendable () -> Date
    let signal: ChangeSignal
    private let watcher: DatabaseFileWatcher?

    /// Opens the queue database at `path`, creating the file and its schema when needed.
    ///
    /// - Parameters:
    ///   - path: The SQLite file. Its directory must exist; other processes may open the same file.
    ///   - now: The clock for send times, deduplication windows (300 seconds) and visibility timeouts; tests inject
    ///     one to jump ahead.
    /// - Throws: ``QueueError`` `.notAQueueDatabase` when the file is not SQLite, or is an SQLite database of
    ///   another application (another `application_id`, or none with tables in it); `.storage` when SQLite cannot
    ///   open, configure or migrate it (permissions, disk full, locked past the busy timeout).
    public init(path: String, now: @escaping @Sendable () -> Date = { Date() }) throws(QueueError) {
        self.path = path
        self.now = now
        self.signal = ChangeSignal()
        try Self.checkHeader(path)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.label = "touchstone.queue"
        do {
            pool = try Self.openPool(path: path, configuration: configuration)
        } catch {
            throw Self.wrap(error, "cannot open the queue database at \(path)", path: path)
        }
        try Self.prepare(pool, path: path)
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        do {
            watcher = try DatabaseFileWatcher(databasePath: resolved, signal: signal)
            recheckInterval = .seconds(1)
        } catch {
            Logger.current.warning(
                "Queue database changes are not watched; long polls fall back to re-checking every 250 ms",
                metadata: ["queue.path": "\(path)", "error": "\(error)"])
            watcher = nil
            recheckInterval = .milliseconds(250)
        }
    }

    /// Opens the pool, retrying while another process holds the lock that switching a new file to WAL needs:
    /// SQLite returns SQLITE_BUSY there without calling the busy handler.
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

    deinit {
        watcher?.stop()
        signal.close()
    }

    /// Stops the watcher thread, wakes every waiting long poll, and closes the database connections.
    ///
    /// Long polls in progress end by throwing `.storage`; later calls on this store or its queues throw `.storage`.
    /// Calling it again does nothing.
    public func close() {
        watcher?.stop()
        signal.close()
        try? pool.close()
    }

    // MARK: Queues

    /// Creates a FIFO queue, or does nothing when it exists with the same attributes.
    ///
    /// - Parameters:
    ///   - name: 1–80 characters of ASCII letters, digits, `-` and `_`, ending in `.fifo` (SQS `CreateQueue`
    ///     `QueueName` rules for FIFO queues).
    ///   - attributes: The queue's default visibility timeout and maximum message size.
    /// - Throws: ``QueueError`` `.invalidParameter` for a bad name or out-of-range attributes; `.queueNameExists`
    ///   when the queue exists with other attributes; `.storage`.
    public func createQueue(name: String, attributes: QueueAttributes = .init()) throws(QueueError) {
        try SQSLimits.validateQueueName(name)
        try SQSLimits.validate(attributes)
        let visibility = attributes.visibilityTimeout.wholeMilliseconds
        let size = attributes.maximumMessageSize
        let createdAt = Self.milliseconds(now())
        try writeSync("cannot create queue \(name)") { db in
            if let row = try Row.fetchOne(
                db, sql: "SELECT visibility_timeout_ms, maximum_message_size FROM queues WHERE name = ?",
                arguments: [name])
            {
                let existing = QueueAttributes(
                    visibilityTimeout: .milliseconds(row["visibility_timeout_ms"] as Int64),
                    maximumMessageSize: row["maximum_message_size"])
                // Compared as stored: whole milliseconds.
                guard existing.visibilityTimeout.wholeMilliseconds == visibility, existing.maximumMessageSize == size
                else {
                    throw QueueError(
                        .queueNameExists,
                        "queue \(name) already exists with other attributes (visibility timeout "
                            + "\(existing.visibilityTimeout), maximum message size "
                            + "\(existing.maximumMessageSize) bytes)"
                    )
                }
                return
            }
            try db.execute(
                sql: """
                    INSERT INTO queues (name, visibility_timeout_ms, maximum_message_size, created_at_ms)
                    VALUES (?, ?, ?, ?)
                    """, arguments: [name, visibility, size, createdAt])
        }
    }

    /// Deletes a queue with its messages and deduplication records.
    ///
    /// Handles of the queue (``EmbeddedQueue``) in any process throw `.queueDoesNotExist` from then on.
    ///
    /// - Parameter name: The queue's name.
    /// - Throws: ``QueueError`` `.queueDoesNotExist`, `.storage`.
    public func deleteQueue(name: String) throws(QueueError) {
        try writeSync("cannot delete queue \(name)") { db in
            try db.execute(sql: "DELETE FROM queues WHERE name = ?", arguments: [name])
            if db.changesCount == 0 { throw QueueError(.queueDoesNotExist, "queue \(name) does not exist") }
        }
        signal.bump()
    }

    /// The names of all queues in the file, sorted.
    ///
    /// - Returns: Queue names in ascending order.
    /// - Throws: ``QueueError`` `.storage`.
    public func queueNames() throws(QueueError) -> [String] {
        try readSync("cannot list the queues") { db in
            try String.fetchAll(db, sql: "SELECT name FROM queues ORDER BY name")
        }
    }

    /// A handle to an existing queue.
    ///
    /// - Parameter name: The queue's name.
    /// - Returns: A ``MessageQueue`` backed by this store; it keeps the store alive.
    /// - Throws: ``QueueError`` `.queueDoesNotExist`, `.storage`.
    public func queue(named name: String) throws(QueueError) -> EmbeddedQueue {
        let exists = try readSync("cannot look up queue \(name)") { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM queues WHERE name = ?)", arguments: [name])
                ?? false
        }
        guard exists else { throw QueueError(.queueDoesNotExist, "queue \(name) does not exist") }
        return EmbeddedQueue(store: self, name: name)
    }

    // MARK: Database access

    /// Runs `body` in an `IMMEDIATE` transaction: SQLite's write lock is taken before the first read, so what is read
    /// cannot change before the transaction commits, in any process.
    ///
    /// - Throws: ``QueueError`` (GRDB's errors wrapped as `.storage`), or `CancellationError` when the task is
    ///   cancelled before GRDB runs `body`.
    func write<T: Sendable>(_ message: @autoclosure () -> String, _ body: @escaping @Sendable (Database) throws -> T)
        async throws -> T
    {
        try checkOpen()
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
            throw Self.wrap(error, message(), path: path)
        }
    }

    /// Runs `body` in a read-only transaction on a reader connection (no write lock).
    ///
    /// - Throws: ``QueueError``, or `CancellationError` when the task is cancelled before GRDB runs `body`.
    func read<T: Sendable>(_ message: @autoclosure () -> String, _ body: @escaping @Sendable (Database) throws -> T)
        async throws -> T
    {
        try checkOpen()
        do {
            return try await pool.read(body)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw Self.wrap(error, message(), path: path)
        }
    }

    private func writeSync(_ message: @autoclosure () -> String, _ body: (Database) throws -> Void) throws(QueueError) {
        try checkOpen()
        do {
            try pool.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    try body(db)
                    return .commit
                }
            }
        } catch {
            throw Self.wrap(error, message(), path: path)
        }
    }

    private func readSync<T>(_ message: @autoclosure () -> String, _ body: (Database) throws -> T) throws(QueueError)
        -> T
    {
        try checkOpen()
        do {
            return try pool.read(body)
        } catch {
            throw Self.wrap(error, message(), path: path)
        }
    }

    /// Reads an integer `PRAGMA` (`synchronous`, `busy_timeout`, `application_id`) on the writer connection, where
    /// durability settings matter; for diagnostics and tests.
    func writerPragma(_ name: String) throws(QueueError) -> Int64? {
        try checkOpen()
        do {
            return try pool.writeWithoutTransaction { db in try Int64.fetchOne(db, sql: "PRAGMA \(name)") }
        } catch {
            throw Self.wrap(error, "cannot read PRAGMA \(name)", path: path)
        }
    }

    func checkOpen() throws(QueueError) {
        if signal.isClosed { throw QueueError(.storage, "the queue store at \(path) is closed") }
    }

    /// Maps an error of GRDB or SQLite to a ``QueueError``.
    static func wrap(_ error: any Error, _ message: String, path: String) -> QueueError {
        if let error = error as? QueueError { return error }
        if let database = error as? DatabaseError, database.resultCode == .SQLITE_NOTADB {
            return QueueError(
                .notAQueueDatabase, "\(path) is not an SQLite database, so not a Touchstone queue database",
                underlying: error)
        }
        return QueueError(.storage, message, underlying: error)
    }

    static func milliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1_000).rounded(.down)) }

    static func date(milliseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1_000) }
}
