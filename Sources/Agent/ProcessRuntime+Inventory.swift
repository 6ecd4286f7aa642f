import Domain
import Foundation
import InputLimits
import Wire

#if canImport(Glibc)
import Glibc
#endif

extension ProcessRuntime {
    /// The labelled task processes of this runtime's scope that run on the host, found in `/proc`: session leaders
    /// whose environment has `TOUCHSTONE_RUNTIME_SCOPE` equal to ``scope``, a `TOUCHSTONE_TASK_ID` and a
    /// `TOUCHSTONE_ATTEMPT`; their labels are read from `labels.json` in their `TOUCHSTONE_DIRECTORY`.
    ///
    /// - Returns: One `running` report per process, with its PID and labels.
    /// - Throws: ``RuntimeError/Code/unreachable`` when `/proc` cannot be read.
    public func inventory() async throws -> [TaskStatusReport] {
        try Self.scanProcesses(scope: scope, workspace: workspace)
    }

    static func scanProcesses(scope: String, workspace: String?, proc: String = "/proc") throws -> [TaskStatusReport] {
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: proc)
        } catch {
            throw RuntimeError(.unreachable, "cannot list the processes in \(proc)", underlying: error)
        }
        var reports: [TaskStatusReport] = []
        for entry in entries {
            guard let pid = Int32(entry), let stat = ProcessStat(pid: pid, proc: proc), stat.session == pid,
                stat.state != "Z", let environment = Self.environment(of: pid, proc: proc),
                environment["TOUCHSTONE_RUNTIME_SCOPE"] == scope, let task = environment["TOUCHSTONE_TASK_ID"],
                TaskID.isValid(task), let attempt = environment["TOUCHSTONE_ATTEMPT"].flatMap({ Int($0) })
            else { continue }
            let directory = environment["TOUCHSTONE_DIRECTORY"] ?? ""
            if let workspace, !directory.hasPrefix(workspace.hasSuffix("/") ? workspace : workspace + "/") { continue }
            var labels =
                (try? Data(contentsOf: URL(fileURLWithPath: directory + "/labels.json")))
                .flatMap { (try? Self.labelFileLimits.check($0)) == nil ? nil : try? JSONDecoder().decode([String: String].self, from: $0) } ?? [:]
            labels["touchstone.task"] = task
            labels["touchstone.attempt"] = String(attempt)
            labels["touchstone.directory"] = directory
            labels[serverLabel] = scope
            reports.append(
                TaskStatusReport(
                    taskID: TaskID(rawValue: task), attempt: attempt, state: .running, pid: pid, labels: labels))
        }
        return reports.sorted { $0.key < $1.key }
    }

    /// Takes over a process an earlier agent started: watched from now on (polling its PID), stoppable, its end read
    /// from the exit-code file its wrapper writes. A process that already ended gets its final report from that file.
    ///
    /// - Parameter report: The attempt's last report, with its PID and `touchstone.directory` label.
    /// - Returns: `running` when it is supervised from now on, else its final report.
    public func adopt(_ report: TaskStatusReport) async throws -> TaskStatusReport {
        let attempt = report.key
        if running[attempt] != nil { return report }
        guard let pid = report.pid, Self.isAlive(pid) else {
            return Self.endedReport(report, stopped: false)
        }
        let cgroupPath = cgroups.map { "\($0.base)/\(attempt.taskID)-\(attempt.attempt)" }
        running[attempt] = Running(
            pid: pid, cgroup: cgroupPath.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil })
        var adopted = report
        adopted.state = .running
        launchSink.yield(.adopted(adopted))
        return adopted
    }

    /// Polls an adopted process until it ends, then builds its final report.
    func superviseAdopted(_ report: TaskStatusReport) async -> TaskStatusReport {
        let pid = report.pid ?? 0
        while Self.isAlive(pid) {
            try? await Task.sleep(for: .milliseconds(200))
        }
        let wasStopped = stopping.remove(report.key) != nil
        if let process = running.removeValue(forKey: report.key) {
            kill(-process.pid, SIGKILL)
            if let cgroup = process.cgroup, let cgroups {
                if !cgroups.members(cgroup).isEmpty { cgroups.killAll(cgroup) }
                cgroups.remove(cgroup)
            }
        }
        return Self.endedReport(report, stopped: wasStopped)
    }

    /// Whether a process exists and is not a zombie.
    static func isAlive(_ pid: Int32) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return false }
        return ProcessStat(pid: pid)?.state != "Z"
    }

    /// The final report of a process this runtime did not start, from the exit-code file its wrapper wrote.
    static func endedReport(_ report: TaskStatusReport, stopped: Bool) -> TaskStatusReport {
        var ended = report
        ended.state = stopped ? .stopped : .exited
        let directory = report.labels["touchstone.directory"] ?? ""
        let file = directory + "/exit-code"
        ended.endedAt = (try? FileManager.default.attributesOfItem(atPath: file)[.modificationDate] as? Date) ?? Date()
        if let text = try? String(contentsOfFile: file, encoding: .utf8),
            let code = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
        {
            ended.exitCode = code
            ended.reason = code == 0 ? nil : "exit code \(code)"
        } else {
            ended.reason = "the process ended while the agent was not supervising it; no exit code was recorded"
        }
        if stopped { ended.reason = "stopped on request" + (ended.reason.map { " (\($0))" } ?? "") }
        ended.outputs = Workspace.collectOutputs(report.outputPaths, in: directory + "/work")
        return ended
    }

    /// A process's environment from `/proc/<pid>/environ` (readable by root or the process's owner).
    /// The limits of a task directory's `labels.json` (a flat map the agent wrote, but in a directory the task can
    /// write to): 64 KiB, depth 1.
    static let labelFileLimits = JSONLimits(maxBytes: 64 << 10, maxDepth: 1)

    static func environment(of pid: Int32, proc: String = "/proc") -> [String: String]? {
        guard let data = FileManager.default.contents(atPath: "\(proc)/\(pid)/environ") else { return nil }
        var environment: [String: String] = [:]
        for entry in data.split(separator: 0) {
            let text = String(decoding: entry, as: UTF8.self)
            guard let equals = text.firstIndex(of: "=") else { continue }
            environment[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        return environment
    }
}

/// The fields of `/proc/<pid>/stat` the runtime reads (proc(5)): state, process group, session.
struct ProcessStat {
    var state: Character
    var processGroup: Int32
    var session: Int32

    init?(pid: Int32, proc: String = "/proc") {
        guard let text = try? String(contentsOfFile: "\(proc)/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // After "pid (comm) ": state ppid pgrp session …
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count >= 4, let state = fields[0].first, let group = Int32(fields[2]),
            let session = Int32(fields[3])
        else { return nil }
        self.state = state
        self.processGroup = group
        self.session = session
    }
}
