import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Named crash points for recovery tests and `tools/chaos`: when the environment variable `TOUCHSTONE_FAILPOINTS`
/// (comma-separated names) names a point, the process SIGKILLs itself there, exactly as a `kill -9` at that instant
/// would. Unset (always, in production), every point is a no-op.
///
/// Points: `agent.after-launch` (the task's process runs, its start is not yet journaled), `backend.after-send`
/// (a request is on the queue, not yet in the log), `agent.before-respond` (the outcome is journaled, the response
/// not yet sent).
public enum Failpoint {
    static let enabled: Set<String> = Set(
        (ProcessInfo.processInfo.environment["TOUCHSTONE_FAILPOINTS"] ?? "").split(separator: ",").map {
            String($0).trimmingCharacters(in: .whitespaces)
        })

    /// Kills this process with SIGKILL when `name`, or `name:detail` (e.g. `backend.after-send:startTask`), is
    /// enabled.
    public static func crash(at name: String, detail: String? = nil) {
        guard enabled.contains(name) || detail.map({ enabled.contains("\(name):\($0)") }) == true else { return }
        FileHandle.standardError.write(Data("failpoint \(name): SIGKILL\n".utf8))
        kill(getpid(), SIGKILL)
    }
}

/// A test fault: a process's wall clock, offset by the number of seconds (a decimal, may be negative) in the file
/// named by `TOUCHSTONE_FAULT_CLOCK_OFFSET_FILE`, re-read at most every 100 ms so a test can move the clock and put it
/// back while the process runs (issue 17 part 3: an agent whose clock is off, a backend whose clock jumps). Unset
/// (always, in production), ``now()`` is `Date()`. A missing or unreadable file is an offset of 0.
public enum FaultClock {
    static let path = ProcessInfo.processInfo.environment["TOUCHSTONE_FAULT_CLOCK_OFFSET_FILE"]

    private struct Cache: Sendable {
        var offset: TimeInterval = 0
        var readAt: ContinuousClock.Instant?
    }

    private static let cache = Mutex(Cache())

    /// The (possibly offset) wall clock.
    public static func now() -> Date {
        guard let path else { return Date() }
        return Date().addingTimeInterval(offset(path))
    }

    /// The offset in force, in seconds (0 when the fault is not set).
    public static func offset(_ path: String) -> TimeInterval {
        cache.withLock { cache in
            let now = ContinuousClock.now
            if let readAt = cache.readAt, now - readAt < .milliseconds(100) { return cache.offset }
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            cache.offset = TimeInterval(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            cache.readAt = now
            return cache.offset
        }
    }
}
