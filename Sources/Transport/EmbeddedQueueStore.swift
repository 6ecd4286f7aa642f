import FileSignals
import Foundation
import GRDB
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Named FIFO queues with SQS FIFO semantics in SQLite files, shared by the processes of one host.
///
/// The backend and the agents of one host open the same queue path; each process opens its own store. The queues
/// of one group (one server's channels, see ``EmbeddedQueueLayout``) share one SQLite file in the directory next to
/// the path, so a process that stalls while it holds one file's write lock (frozen by `SIGSTOP`, swapped out) delays
/// only that group's queues. Every write runs in a short `IMMEDIATE` transaction, so SQLite's write lock makes claims
/// atomic across processes: two receivers never get the same message.
///
/// Wake-ups: after a write commits that may let a long poll return, the writer rings the queue's doorbell
/// (``Doorbells``): long polls on that queue, and only on that queue, wake at once in this process and through
/// inotify within milliseconds in others (see ``EmbeddedQueue/receive(maxMessages:waitTime:visibilityTimeout:)``).
///
/// - Clock: the injected `now` stamps messages and decides deduplication windows and visibility timeouts; the
///   long-poll wait itself runs on the real monotonic clock.
/// - Lifetime: the store runs one watcher thread, stopped by ``close()`` or when the store is deinitialised.
public final class EmbeddedQueueStore: Sendable {
    /// `PRAGMA application_id` of a Touchstone queue database ("TSQU").
    public static let applicationID: Int32 = 0x5453_5155

    /// How often a waiting long poll re-checks its queue when nothing rang: never (`nil`) while doorbells from other
    /// processes are watched, since a ring follows its commit; 250 ms when inotify could not be set up. Visibility
    /// timeouts that expire during a wait are waited for exactly, and every long poll checks once more at its end.
    let recheckInterval: Duration?

    /// The queue path, as given.
    public let path: String
    /// Where the queues' files are.
    public let layout: EmbeddedQueueLayout
    let now: @Sendable () -> Date
    let doorbells: Doorbells
    private let files: Mutex<[String: EmbeddedQueueFile]>
    private let closed = Atomic<Bool>(false)
    /// Operations of every queue handle of this store.
    let operations = QueueOperationCounter()
    /// Long-poll waits ended by a ring (not by their timeout), by queue name: tests count wake-ups with it.
    private let wakes = Mutex<[String: Int]>([:])

    /// Opens the queues at `path`.
    ///
    /// When `path` is a non-empty file, it is an earlier version's single queue file and is used as it is
    /// (``EmbeddedQueueLayout/singleFile(path:directory:)``); otherwise the queues live in one file per group in
    /// the directory `path` names with its extension replaced by `.d` (`queues.db` → `queues.d/`), created here.
    ///
    /// - Parameters:
    ///   - path: The queue path. Its directory must exist; other processes may open the same path.
    ///   - now: The clock for send times, deduplication windows (300 seconds) and visibility timeouts; tests inject
    ///     one to jump ahead (and call ``clockMoved()``).
    /// - Throws: ``QueueError`` `.invalidParameter` when `path` is a directory; `.notAQueueDatabase` when the file at
    ///   `path` is not SQLite, or is an SQLite database of another application; `.storage` when the directory cannot
    ///   be created or SQLite cannot open, configure or migrate the file.
    public init(path: String, now: @escaping @Sendable () -> Date = { Date() }) throws(QueueError) {
        self.path = path
        self.now = now
        var status = stat()
        let found: EmbeddedQueueLayout.Found
        if stat(path, &status) != 0 {
            found = .nothing
        } else if status.st_mode & S_IFMT == S_IFDIR {
            found = .directory
        } else {
            found = status.st_size > 0 ? .file : .nothing
        }
        let layout = try EmbeddedQueueLayout.choose(path: path, found: found)
        self.layout = layout
        var opened: [String: EmbeddedQueueFile] = [:]
        switch layout {
        case .singleFile(let file, _):
            opened[file] = try EmbeddedQueueFile(path: file)
            Logger.current.warning(
                "The queue path is an earlier version's single queue file: every server shares its lock",
                metadata: ["queue.path": "\(path)", "see": "docs/embedded-queue.md"])
        case .filePerGroup(let directory):
            // Owner only: whoever can write a queue file can put a message on a request queue (docs/security.md).
            if mkdir(directory, 0o700) != 0 && errno != EEXIST {
                throw QueueError(
                    .storage, "cannot create the queue directory \(directory): \(String(cString: strerror(errno)))")
            }
        }
        files = Mutex(opened)
        let doorbells: Doorbells
        do throws(FileSignalError) {
            doorbells = try Doorbells(directory: layout.doorbellDirectory)
        } catch {
            throw QueueError(.storage, error.message)
        }
        self.doorbells = doorbells
        if doorbells.isWatching {
            recheckInterval = nil
        } else {
            Logger.current.warning(
                "Queue doorbells of other processes are not watched; long polls fall back to re-checking every 250 ms",
                metadata: ["queue.path": "\(path)"])
            recheckInterval = .milliseconds(250)
        }
    }

    deinit {
        doorbells.close()
    }

    /// Stops the watcher thread, wakes every waiting long poll, and closes the database connections.
    ///
    /// Long polls in progress end by throwing `.storage`; later calls on this store or its queues throw `.storage`.
    /// Calling it again does nothing.
    public func close() {
        closed.store(true, ordering: .sequentiallyConsistent)
        doorbells.close()
        for file in files.withLock({ Array($0.values) }) { file.close() }
    }

    /// Operations made through every queue handle of this store since it was opened.
    public var operationCounts: QueueOperationCounts { operations.counts }

    /// Wakes every long poll of this store to check its queue again: for tests whose injected clock jumped.
    func clockMoved() { doorbells.bumpAll() }

    /// How many times a ring woke a long poll of this store on queue `name` (tests count wake-ups with it).
    func wakeCount(of name: String) -> Int { wakes.withLock { $0[name] ?? 0 } }

    func countWake(of name: String) { wakes.withLock { $0[name, default: 0] += 1 } }

    /// The open file holding queue `name`.
    ///
    /// - Parameter create: Create the file when missing (else `nil` is returned for a missing file).
    /// - Throws: ``QueueError`` `.storage` when the store is closed or the file cannot be opened, `.notAQueueDatabase`.
    func file(ofQueue name: String, create: Bool) throws(QueueError) -> EmbeddedQueueFile? {
        try checkOpen()
        let path = layout.file(ofQueue: name)
        if let file = files.withLock({ $0[path] }) { return file }
        if !create && access(path, F_OK) != 0 { return nil }
        let file = try file(ofPath: path)
        if closed.load(ordering: .sequentiallyConsistent) { file.close() }
        try checkOpen()
        return file
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
        try file(ofQueue: name, create: true)!.writeSync("cannot create queue \(name)") { db in
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
        guard Doorbells.isValidName(name), let file = try file(ofQueue: name, create: false) else {
            throw QueueError(.queueDoesNotExist, "queue \(name) does not exist")
        }
        try file.writeSync("cannot delete queue \(name)") { db in
            try db.execute(sql: "DELETE FROM queues WHERE name = ?", arguments: [name])
            if db.changesCount == 0 { throw QueueError(.queueDoesNotExist, "queue \(name) does not exist") }
        }
        doorbells.ring(name)
    }

    /// The names of all queues at the queue path, sorted.
    ///
    /// - Returns: Queue names in ascending order.
    /// - Throws: ``QueueError`` `.storage`, `.notAQueueDatabase` (a foreign `.db` file in the queue directory).
    public func queueNames() throws(QueueError) -> [String] {
        try checkOpen()
        let paths: [String]
        switch layout {
        case .singleFile(let path, _): paths = [path]
        case .filePerGroup(let directory):
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            paths = entries.filter { $0.hasSuffix(".db") }.map { "\(directory)/\($0)" }
        }
        var names: [String] = []
        for path in paths {
            var file = files.withLock { $0[path] }
            if file == nil { file = try self.file(ofPath: path) }
            names += try file!.readSync("cannot list the queues") { db in
                try String.fetchAll(db, sql: "SELECT name FROM queues")
            }
        }
        return names.sorted()
    }

    /// A handle to an existing queue.
    ///
    /// - Parameter name: The queue's name.
    /// - Returns: A ``MessageQueue`` backed by this store; it keeps the store alive.
    /// - Throws: ``QueueError`` `.queueDoesNotExist`, `.storage`.
    public func queue(named name: String) throws(QueueError) -> EmbeddedQueue {
        guard Doorbells.isValidName(name), let file = try file(ofQueue: name, create: false) else {
            throw QueueError(.queueDoesNotExist, "queue \(name) does not exist")
        }
        let exists = try file.readSync("cannot look up queue \(name)") { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM queues WHERE name = ?)", arguments: [name])
                ?? false
        }
        guard exists else { throw QueueError(.queueDoesNotExist, "queue \(name) does not exist") }
        return EmbeddedQueue(store: self, name: name, file: file)
    }

    /// The file at `path`, opened once per store.
    ///
    /// Opened outside the lock: opening may wait on the file's write lock, which must not delay other files.
    private func file(ofPath path: String) throws(QueueError) -> EmbeddedQueueFile {
        let opened = try EmbeddedQueueFile(path: path)
        let (file, duplicate) = files.withLock { files -> (EmbeddedQueueFile, Bool) in
            if let existing = files[path] { return (existing, true) }
            files[path] = opened
            return (opened, false)
        }
        if duplicate { opened.close() }
        return file
    }

    // MARK: Database access

    /// Reads an integer `PRAGMA` (`synchronous`, `busy_timeout`, `application_id`) on the writer connection, where
    /// durability settings matter, of the file holding queue `queue`; for diagnostics and tests.
    func writerPragma(_ name: String, ofQueue queue: String) throws(QueueError) -> Int64? {
        guard let file = try file(ofQueue: queue, create: false) else {
            throw QueueError(.queueDoesNotExist, "queue \(queue) does not exist")
        }
        do {
            return try file.pool.writeWithoutTransaction { db in try Int64.fetchOne(db, sql: "PRAGMA \(name)") }
        } catch {
            throw Self.wrap(error, "cannot read PRAGMA \(name)", path: file.path)
        }
    }

    func checkOpen() throws(QueueError) {
        if closed.load(ordering: .sequentiallyConsistent) {
            throw QueueError(.storage, "the queue store at \(path) is closed")
        }
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
