import FileSignals
import Foundation
import Logging

/// Wakes the backend's scheduling loop when the event log's database file changes: this process's appends and other
/// processes' (the CLI's submits, cancels, capacity changes), through inotify on the file and its `-wal`
/// (``DatabaseFileWatcher``). Waiters read ``generation`` before they look at the log, then wait past it, so no
/// change between the look and the wait is missed.
final class LogChanges: Sendable {
    private let signal = ChangeSignal()
    private let watcher: DatabaseFileWatcher?

    /// Starts watching the log at `path`. Without inotify (a watch limit reached) the loop still runs on its
    /// computed deadlines, and a warning says that changes by other processes are seen only then.
    init(path: String) {
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        do {
            watcher = try DatabaseFileWatcher(databasePath: resolved, signal: signal)
        } catch {
            Logger(label: "touchstone.backend").warning(
                "the event log's changes are not watched; other processes' appends are seen only at the next deadline",
                metadata: ["error": "\(error)"])
            watcher = nil
        }
    }

    /// The current generation (it only grows).
    var generation: UInt64 { signal.generation }

    /// Waits until the generation moves past `seen`, or `timeout` passes (at most a second when the file is not
    /// watched).
    func wait(after seen: UInt64, timeout: Duration) async {
        await signal.wait(after: seen, timeout: watcher == nil ? min(timeout, .seconds(1)) : timeout)
    }

    /// Stops the watch thread.
    func stop() { watcher?.stop() }
}
