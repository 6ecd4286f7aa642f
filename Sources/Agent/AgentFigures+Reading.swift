import Foundation
import Wire

extension AgentFigures {
    /// The figures of the attempts an agent knows, and its resident set size read from `/proc/self/statm`.
    ///
    /// - Parameters:
    ///   - reports: Every attempt the agent knows (``AgentTasks/all``).
    ///   - statm: The statm file (a test passes another).
    static func reading(_ reports: [TaskStatusReport], statm: String = "/proc/self/statm") -> AgentFigures {
        var byState: [String: Int] = [:]
        for report in reports { byState[report.state.rawValue, default: 0] += 1 }
        return AgentFigures(
            residentBytes: residentBytes(statm: statm), tasksByState: byState,
            runtimeErrors: byState[TaskStatusReport.State.failedToStart.rawValue] ?? 0)
    }

    /// The second field of statm (resident pages) times the page size; `nil` when the file cannot be read.
    static func residentBytes(statm: String) -> Int64? {
        guard let text = try? String(contentsOfFile: statm, encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int64(fields[1]) else { return nil }
        return pages * Int64(sysconf(Int32(_SC_PAGESIZE)))
    }
}
