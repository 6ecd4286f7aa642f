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

    private struct Control {
        var stopRequested = false
        var exited = false
    }

    private let inotifyFD: Int32
    /// The read end of the stop pipe (polled by the thread).
    private let stopFD: Int32
    /// The write end of the stop pipe (written by ``stop()``).
    private let stopWriteFD: Int32
    private let control = Mutex(Control())

    /// Starts watching `databasePath` (an absolute path whose symlinks are resolved) and its `-wal`.
    ///
    /// - Throws: ``FileSignalError`` when inotify or the thread cannot be set up (for example
    ///   `fs.inotify.max_user_instances` reached); the caller then relies on its periodic re-check.
    public init(databasePath: String, signal: ChangeSignal) throws(FileSignalError) {
        let url = URL(fileURLWithPath: databasePath)
        let directory = url.deletingLastPathComponent().path
        let name = url.lastPathComponent
        let names: Set<[UInt8]> = [Array(name.utf8), Array((name + "-wal").utf8)]

        let inotifyFD = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard inotifyFD >= 0 else { throw Self.systemError("inotify_init1", databasePath) }
        let mask = UInt32(IN_MODIFY) | UInt32(IN_CREATE) | UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_TO)
        guard inotify_add_watch(inotifyFD, directory, mask) >= 0 else {
            let error = Self.systemError("inotify_add_watch on \(directory)", databasePath)
            Glibc.close(inotifyFD)
            throw error
        }
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            let error = Self.systemError("pipe", databasePath)
            Glibc.close(inotifyFD)
            throw error
        }
        for fd in pipeFDs {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        self.inotifyFD = inotifyFD
        self.stopFD = pipeFDs[0]
        self.stopWriteFD = pipeFDs[1]

        let thread = Thread { [self] in self.run(names: names, signal: signal) }
        thread.name = "touchstone.queue-watch"
        thread.start()
    }

    /// Asks the thread to exit; it closes the descriptors. Safe to call more than once.
    public func stop() {
        control.withLock { control in
            guard !control.exited, !control.stopRequested else { return }
            control.stopRequested = true
            var byte: UInt8 = 1
            _ = Glibc.write(stopWriteFD, &byte, 1)
        }
    }

    private func run(names: Set<[UInt8]>, signal: ChangeSignal) {
        defer {
            control.withLock { control in
                control.exited = true
                Glibc.close(inotifyFD)
                Glibc.close(stopFD)
                Glibc.close(stopWriteFD)
            }
        }
        let clock = ContinuousClock()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var burstEnd: ContinuousClock.Instant?
        var followUpIndex = 0
        var fds = [
            pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0),
            pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            var timeout: Int32 = -1
            if let burstEnd, followUpIndex < Self.followUps.count {
                let due = burstEnd + .milliseconds(Self.followUps[followUpIndex])
                let wait = (due - clock.now).components
                timeout = Int32(clamping: max(0, wait.seconds * 1_000 + wait.attoseconds / 1_000_000_000_000_000 + 1))
            }
            fds[0].revents = 0
            fds[1].revents = 0
            let ready = poll(&fds, 2, timeout)
            if ready < 0 {
                if errno == EINTR { continue }
                signal.bump()
                return
            }
            if fds[1].revents != 0 { return }
            if fds[0].revents != 0 {
                if drainEvents(into: &buffer, matching: names) {
                    signal.bump()
                    burstEnd = clock.now
                    followUpIndex = 0
                }
                continue
            }
            if let burstEnd, followUpIndex < Self.followUps.count,
                clock.now >= burstEnd + .milliseconds(Self.followUps[followUpIndex])
            {
                signal.bump()
                followUpIndex += 1
            }
        }
    }

    /// Reads every pending inotify event; true when one concerns a watched name (or the queue overflowed).
    private func drainEvents(into buffer: inout [UInt8], matching names: Set<[UInt8]>) -> Bool {
        var relevant = false
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(inotifyFD, $0.baseAddress, $0.count) }
            if count <= 0 { return relevant }
            buffer.withUnsafeBytes { bytes in
                var offset = 0
                let header = MemoryLayout<inotify_event>.size
                while offset + header <= count {
                    let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                    let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    if mask & UInt32(IN_Q_OVERFLOW) != 0 { relevant = true }
                    let nameBytes = bytes[(offset + header)..<min(offset + header + length, count)]
                    let name = Array(nameBytes.prefix(while: { $0 != 0 }))
                    if names.contains(name) { relevant = true }
                    offset += header + length
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
