import Foundation

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
