import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One ``ChangeSignal`` per name, rung in this process at once and in every other process through a "doorbell" file.
///
/// A writer commits, then calls ``ring(_:)``: that bumps the name's signal in this process and touches the file
/// `<directory>/<name>` (`utimensat`, an `IN_ATTRIB` event; the file is created when missing, an `IN_CLOSE_WRITE`).
/// Each process watches, with one inotify descriptor and one thread, only the doorbell files of the names it asked
/// a signal for (``signal(for:)``), and bumps that name's signal alone. A write to one name therefore wakes only the
/// waiters on that name, on the whole host, and since the ring follows the commit a woken waiter always sees it: no
/// follow-up bumps and no periodic re-check are needed. While nothing rings, the thread sleeps in `poll(2)` with no
/// timeout and costs nothing.
///
/// If inotify cannot be set up (``isWatching`` is false, for example `fs.inotify.max_user_instances` reached), rings
/// in this process still wake its waiters and rings still touch the files for other processes; callers then re-check
/// on their own. A lost inotify queue (`IN_Q_OVERFLOW`) bumps every signal.
public final class Doorbells: Sendable {
    private struct Registry {
        var signals: [String: ChangeSignal] = [:]
        /// Names whose doorbell file is watched, by watch descriptor.
        var names: [Int32: String] = [:]
        var watched: Set<String> = []
        var closed = false
    }

    /// The directory of the doorbell files.
    public let directory: String
    private let registry = Mutex(Registry())
    private let watcher: InotifyLoop?

    /// True when rings from other processes reach this one (inotify is set up).
    public var isWatching: Bool { watcher != nil }

    /// Creates `directory` (and its parents) when missing and starts the watcher thread.
    ///
    /// - Parameter directory: The doorbell directory; every process ringing or waiting on a name must use the same.
    /// - Throws: ``FileSignalError`` when the directory cannot be created. A failure to set up inotify is not thrown:
    ///   see ``isWatching``.
    public init(directory: String) throws(FileSignalError) {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw FileSignalError(message: "cannot create the doorbell directory \(directory): \(error)")
        }
        watcher = try? InotifyLoop()
        if let watcher {
            // Weak: the thread must not keep the doorbells alive, so that deinit stops it.
            let thread = Thread { [weak self] in
                defer { watcher.finish() }
                var buffer = [UInt8](repeating: 0, count: 64 * 1024)
                while true {
                    switch watcher.next(timeoutMilliseconds: -1, buffer: &buffer) {
                    case .events(let events): self?.handle(events)
                    case .failed:
                        self?.bumpAll()
                        return
                    case .stopped: return
                    case .timedOut: continue
                    }
                }
            }
            thread.name = "touchstone.doorbells"
            thread.start()
        }
    }

    deinit { close() }

    /// The signal of `name`; from the first call on, rings of `name` by other processes bump it.
    ///
    /// Call it before each check of what the name guards (read the generation, check, then wait): a doorbell file
    /// deleted behind the watcher's back is watched again here.
    ///
    /// - Parameter name: A file name: 1–255 bytes, no `/` or NUL, not `.` or `..` (queue names qualify).
    /// - Returns: The name's signal; closed signals once ``close()`` ran.
    public func signal(for name: String) -> ChangeSignal {
        precondition(Self.isValidName(name), "a doorbell name must be a plain file name, not \(name)")
        let (signal, needsWatch) = registry.withLock { registry -> (ChangeSignal, Bool) in
            let signal = registry.signals[name] ?? ChangeSignal()
            if registry.signals[name] == nil {
                registry.signals[name] = signal
                if registry.closed { signal.close() }
            }
            return (signal, !registry.closed && watcher != nil && !registry.watched.contains(name))
        }
        if needsWatch, let watcher {
            let path = directory + "/" + name
            // Read-only with O_CREAT: creates the file when missing without raising IN_CLOSE_WRITE for others.
            let fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0o666)
            if fd >= 0 { Glibc.close(fd) }
            let wd = inotify_add_watch(watcher.fd, path, UInt32(IN_ATTRIB) | UInt32(IN_CLOSE_WRITE))
            if wd >= 0 {
                registry.withLock { registry in
                    registry.names[wd] = name
                    registry.watched.insert(name)
                }
            }
        }
        return signal
    }

    /// Wakes the waiters on `name`: in this process at once, in others through the doorbell file.
    ///
    /// Call it after the change is committed, so that every woken waiter sees it. Failing to touch the file (the
    /// directory was removed, permissions) is ignored: waiters in other processes then see the change at their own
    /// safety re-check.
    ///
    /// - Parameter name: As for ``signal(for:)``.
    public func ring(_ name: String) {
        precondition(Self.isValidName(name), "a doorbell name must be a plain file name, not \(name)")
        registry.withLock { $0.signals[name] }?.bump()
        let path = directory + "/" + name
        if utimensat(AT_FDCWD, path, nil, 0) == 0 { return }
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o666)
        if fd >= 0 { Glibc.close(fd) }
    }

    /// Bumps every signal of this process (not other processes'): for a clock that jumped, or a lost event queue.
    public func bumpAll() {
        for signal in registry.withLock({ Array($0.signals.values) }) { signal.bump() }
    }

    /// Stops the watcher thread and closes every signal (waiters wake, later waits return at once). Idempotent.
    public func close() {
        let signals = registry.withLock { registry -> [ChangeSignal] in
            registry.closed = true
            return Array(registry.signals.values)
        }
        watcher?.stop()
        for signal in signals { signal.close() }
    }

    /// A plain file name: 1–255 bytes, no `/` or NUL, not `.` or `..`.
    public static func isValidName(_ name: String) -> Bool {
        let bytes = name.utf8
        return !bytes.isEmpty && bytes.count <= 255 && name != "." && name != ".."
            && !bytes.contains(UInt8(ascii: "/")) && !bytes.contains(0)
    }

    /// Handles one batch of inotify events (on the watcher thread).
    private func handle(_ events: [InotifyEvent]) {
        var bumpEverything = false
        let signals = registry.withLock { registry -> [ChangeSignal] in
            var signals: [ChangeSignal] = []
            for event in events {
                if event.mask & UInt32(IN_Q_OVERFLOW) != 0 { bumpEverything = true }
                guard let name = registry.names[event.wd] else { continue }
                if event.mask & UInt32(IN_IGNORED) != 0 {
                    // The file was deleted (or its file system unmounted): watch again at the next signal(for:).
                    registry.names[event.wd] = nil
                    registry.watched.remove(name)
                }
                if let signal = registry.signals[name] { signals.append(signal) }
            }
            return signals
        }
        if bumpEverything { bumpAll() }
        for signal in signals { signal.bump() }
    }
}
