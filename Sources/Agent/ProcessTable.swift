import Domain
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Reads `/proc` to find the task wrappers the process runtime started: each is a session leader (`setsid`) whose
/// environment names its attempt (`TOUCHSTONE_TASK_ID`, `TOUCHSTONE_ATTEMPT`). These variables are the process
/// runtime's labels; a process without them is never reported or touched.
enum ProcessTable {
    /// Whether a process exists and is not a zombie (an adopted process is not our child, so nobody here reaps it;
    /// where PID 1 does not reap either, it stays a zombie after its end).
    static func isAlive(_ pid: Int32, proc: String = "/proc") -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        return !isZombie(pid, proc: proc)
    }

    static func isZombie(_ pid: Int32, proc: String = "/proc") -> Bool {
        guard let stat = try? String(contentsOfFile: "\(proc)/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    /// The PID of the live (not zombie) wrapper of an attempt, if one runs.
    static func wrapper(of attempt: TaskAttempt, proc: String = "/proc") -> Int32? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: proc) else { return nil }
        let wanted: Set<String> = [
            "TOUCHSTONE_TASK_ID=\(attempt.taskID.rawValue)", "TOUCHSTONE_ATTEMPT=\(attempt.attempt)",
        ]
        for entry in entries {
            guard let pid = Int32(entry), getsid(pid) == pid,
                let environ = FileManager.default.contents(atPath: "\(proc)/\(entry)/environ")
            else { continue }
            let variables = Set(environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) })
            guard wanted.isSubset(of: variables), !isZombie(pid, proc: proc) else { continue }
            return pid
        }
        return nil
    }
}
