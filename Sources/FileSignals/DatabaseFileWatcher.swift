import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Watches a SQLite database file and its `-wal` with inotify and bumps a ``ChangeSignal`` when either changes.
///
/// A write by any process to a WAL database writes the `-wal` file (or, at a checkpoint, the database file), so an
/// `IN_MODIFY`, `IN_CREATE`, `IN_CLOSE_WRITE` or `IN_MOVED_TO` event on either name tells waiting long polls to look
/// again. The directory is watched, not the files, so a `-wal` that SQLite deletes and recreates stays covered.
///
/// SQLite writes the WAL frames *before* it syncs them and publishes the commit in the shared-memory index (an `mmap`
/// write, which raises no inotify event), so the events of a commit arrive while it is not yet visible to readers.
/// The watcher therefore bumps the signal again 1, 2, 4, … 512 ms after the last event of a burst, so a waiter sees
/// the commit within about twice the commit's `fsync` time; long polls also re-check on their own every second.
/// (Measured here: without the follow-ups, a send from a second store was seen only by the periodic re-check.)
///
/// The blocking `poll(2)` runs on one dedicated `Thread`, never on a Swift-concurrency thread. ``stop()`` (called by
/// the store's `close()` and `deinit`) wakes it through a pipe, and the thread closes the descriptors as it exits.
public final class DatabaseFileWatcher: Sendable {
    /// The follow-up bumps after the last event of a burst, in milliseconds from that event.
    static let followUps: [Int64] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]

    private let loop: InotifyLoop

    /// Starts watching `databasePath` (an absolute path whose symlinks are resolved) and its `-wal`.
    ///
    /// - Throws: ``FileSignalError`` when inotify or the thread cannot be set up (for example
    ///   `fs.inotify.max_user_instances` reached); the caller then relies on its periodic re-check.
    public init(databasePath: String, signal: ChangeSignal) throws(FileSignalError) {
        let url = URL(fileURLWithPath: databasePath)
        let directory = url.deletingLastPathComponent().path
        let name = url.lastPathComponent
        let names: Set<[UInt8]> = [Array(name.utf8), Array((name + "-wal").utf8)]

        let loop: InotifyLoop
        do throws(FileSignalError) {
            loop = try InotifyLoop()
        } catch {
            throw FileSignalError(message: "cannot watch the database \(databasePath) for changes: \(error.message)")
        }
        let mask = UInt32(IN_MODIFY) | UInt32(IN_CREATE) | UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_TO)
        guard inotify_add_watch(loop.fd, directory, mask) >= 0 else {
            let error = Self.systemError("inotify_add_watch on \(directory)", databasePath)
            loop.finish()
            throw error
        }
        self.loop = loop

        let thread = Thread { [self] in self.run(names: names, signal: signal) }
        thread.name = "touchstone.queue-watch"
        thread.start()
    }

    /// Asks the thread to exit; it closes the descriptors. Safe to call more than once.
    public func stop() { loop.stop() }

    private func run(names: Set<[UInt8]>, signal: ChangeSignal) {
        defer { loop.finish() }
        let clock = ContinuousClock()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var burstEnd: ContinuousClock.Instant?
        var followUpIndex = 0
        while true {
            var timeout: Int32 = -1
            if let burstEnd, followUpIndex < Self.followUps.count {
                let due = burstEnd + .milliseconds(Self.followUps[followUpIndex])
                timeout = Int32(clamping: max(0, (due - clock.now).wholeMilliseconds + 1))
            }
            switch loop.next(timeoutMilliseconds: timeout, buffer: &buffer) {
            case .stopped: return
            case .failed:
                signal.bump()
                return
            case .events(let events):
                let relevant = events.contains { event in
                    event.mask & UInt32(IN_Q_OVERFLOW) != 0 || names.contains(event.name)
                }
                if relevant {
                    signal.bump()
                    burstEnd = clock.now
                    followUpIndex = 0
                }
            case .timedOut:
                if let burstEnd, followUpIndex < Self.followUps.count,
                    clock.now >= burstEnd + .milliseconds(Self.followUps[followUpIndex])
                {
                    signal.bump()
                    followUpIndex += 1
                }
            }
        }
    }

    private static func systemError(_ call: String, _ path: String) -> FileSignalError {
        let code = errno
        return FileSignalError(
            message: "cannot watch the database \(path) for changes: \(call) failed: \(String(cString: strerror(code)))")
    }
}

/// A watch could not be set up (inotify, pipe or thread); the message names the call and the path.
public struct FileSignalError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
