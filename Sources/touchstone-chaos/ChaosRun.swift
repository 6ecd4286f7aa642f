import Domain
import EventStore
import Foundation
import Projections
import Synchronization
import Transport
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// The processes of one chaos run: `touchstone serve` and one `touchstone-agent` per server, each restartable, with
/// their output appended to files in the run's directory.
final class ChaosRun: Sendable {
    let directory: String
    let binaries: String
    let servers: [ServerID]
    let maxTasks: Int
    let transportArguments: [String]
    let queuePrefix: String
    /// Queue pairs per server (channel 0 is control): starts and stops use the others.
    let channels: Int
    let log: TouchstoneLog
    private let processes = Mutex<[String: Process]>([:])

    init(
        directory: String, binaries: String, agents: Int, maxTasks: Int, transportArguments: [String],
        queuePrefix: String, channels: Int = 3
    ) throws {
        self.channels = channels
        self.directory = directory
        self.binaries = binaries
        self.servers = (1...agents).map { ServerID(rawValue: String(format: "gpu-%02d", $0))! }
        self.maxTasks = maxTasks
        self.transportArguments = transportArguments
        self.queuePrefix = queuePrefix
        self.log = try TouchstoneLog(path: directory + "/state/touchstone.db")
    }

    var state: String { directory + "/state" }
    /// Every task appends `start <task> <attempt>` and `end <task> <attempt>` here: the ground truth of what ran.
    var record: String { directory + "/runs.log" }

    /// Attaches the servers, creates their queues and submits the workload.
    func prepare(tasks: Int, queues: any QueueProvider) async throws {
        let meta = EventMetadata(actor: "operator:chaos")
        // As `server attach` does: the backend key the co-located agents trust (--backend-key @…/backend-trusted.pub).
        try KeyDirectory(stateDirectory: state).initialize()
        for server in servers {
            try await log.append(
                .serverAttached(ServerAttached(serverID: server, maxTasks: maxTasks, channels: channels)), metadata: meta)
            for index in 0..<channels {
                let channel = ChannelID(server: server, index: index)
                try await queues.createQueueIfNeeded(
                    named: ChannelQueues.requestQueue(prefix: queuePrefix, channel: channel), attributes: QueueAttributes())
                try await queues.createQueueIfNeeded(
                    named: ChannelQueues.responseQueue(prefix: queuePrefix, channel: channel), attributes: QueueAttributes())
            }
        }
        for index in 0..<tasks {
            let task = TaskID(rawValue: String(format: "tsk-c4a05%07x", index))
            // Short tasks of 0.2–1.4 s; the record lines are short O_APPEND writes, so concurrent tasks never
            // interleave within a line.
            let seconds = 0.2 + Double(index % 7) * 0.2
            let script =
                "echo \"start $TOUCHSTONE_TASK_ID $TOUCHSTONE_ATTEMPT\" >> \(record); sleep \(seconds); "
                + "echo \"end $TOUCHSTONE_TASK_ID $TOUCHSTONE_ATTEMPT\" >> \(record)"
            try await log.append(
                .taskSubmitted(TaskSubmitted(taskID: task, spec: TaskSpec(name: "chaos-\(index)", command: ["/bin/sh", "-c", script]))),
                expectedVersion: .noStream, metadata: meta)
        }
    }

    func startBackend() throws {
        try launch(
            "backend", binaries + "/touchstone",
            ["serve", "--state-dir", state, "--status-interval", "0.3", "--request-timeout", "5", "--execution-timeout",
             "3", "--heartbeat-timeout", "2", "--lost-after", "60", "--max-attempts", "5"] + transportArguments,
            environment: ["TOUCHSTONE_FAULT_CLOCK_OFFSET_FILE": clockFile("backend")])
    }

    /// The file holding a process's clock offset in seconds (the `TOUCHSTONE_FAULT_CLOCK_OFFSET_FILE` test fault).
    func clockFile(_ name: String) -> String { directory + "/clock-\(name)" }

    /// Sets a process's clock offset (0 puts its clock right).
    func setClock(_ name: String, offset seconds: Double) {
        try? String(seconds).write(toFile: clockFile(name), atomically: true, encoding: .utf8)
    }

    func startAgent(_ index: Int) throws {
        let server = servers[index - 1]
        var arguments = [
            "--server", server.rawValue, "--workspace", directory + "/agents/\(server)", "--poll-wait", "1",
            "--drain-deadline", "0", "--channels", String(channels), "--backend-key",
            "@" + state + "/keys/backend-trusted.pub", "--allow-process-runtime", "--allow-root",
        ]
        arguments += transportArguments
        if transportArguments.contains("embedded") { arguments += ["--queue-path", state + "/queues.db"] }
        try launch(
            "agent-\(index)", binaries + "/touchstone-agent", arguments,
            environment: ["TOUCHSTONE_FAULT_CLOCK_OFFSET_FILE": clockFile("agent-\(index)")])
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) to a server's agent.
    func pause(_ server: ServerID, _ stopped: Bool) {
        guard let index = servers.firstIndex(of: server),
            let process = processes.withLock({ $0["agent-\(index + 1)"] })
        else { return }
        kill(process.processIdentifier, stopped ? SIGSTOP : SIGCONT)
    }

    func killBackend() { kill9("backend") }
    func killAgent(_ index: Int) { kill9("agent-\(index)") }

    /// `kill -9` of an agent together with its tasks (as a host reboot does): no exit code is written.
    ///
    /// - Returns: The task sessions killed.
    func killAgentWithTasks(_ index: Int) -> Int {
        kill9("agent-\(index)")
        let sessions = RealProcesses.sessions(under: directory)[servers[index - 1]] ?? []
        for session in sessions { kill(-session, SIGKILL) }
        return sessions.count
    }

    private func launch(_ name: String, _ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = directory + "/\(name).log"
        if !FileManager.default.fileExists(atPath: output) { FileManager.default.createFile(atPath: output, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        processes.withLock { $0[name] = process }
    }

    private func kill9(_ name: String) {
        guard let process = processes.withLock({ $0.removeValue(forKey: name) }) else { return }
        kill(process.processIdentifier, SIGKILL)
        kill(process.processIdentifier, SIGCONT)
        process.waitUntilExit()
    }

    /// SIGTERM to every process (agents with `--drain-deadline 0` stop what still runs), then SIGKILL stragglers.
    func stopAll() async {
        let all = processes.withLock { current in
            defer { current.removeAll() }
            return Array(current.values)
        }
        for process in all { process.terminate() }
        let deadline = ContinuousClock.now + .seconds(20)
        while all.contains(where: \.isRunning), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        for process in all where process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Samples the real task processes every 100 ms: the wrappers the process runtime starts (session leaders carrying
/// `TOUCHSTONE_TASK_ID`), counted per server by their working directory. More than `maxTasks` on one server at once
/// is a breach of invariant 1 in reality, whatever the log says.
actor ProcessSampler {
    let directory: String
    let maxTasks: Int
    private(set) var overCapacity: [String] = []
    private(set) var maxSeen: [ServerID: Int] = [:]

    init(directory: String, maxTasks: Int) {
        self.directory = directory
        self.maxTasks = maxTasks
    }

    func run() async {
        while !Task.isCancelled {
            let counts = RealProcesses.running(under: directory)
            for (server, attempts) in counts {
                maxSeen[server] = max(maxSeen[server] ?? 0, attempts.count)
                if attempts.count > maxTasks { overCapacity.append("\(server) ran \(attempts.count) at once: \(attempts.sorted())") }
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
}

/// The task processes that really run, read from `/proc`.
enum RealProcesses {
    /// Per server, the `task/attempt` of every live task wrapper whose workspace is under `directory`.
    static func running(under directory: String) -> [ServerID: [String]] {
        scan(under: directory).mapValues { $0.map(\.attempt) }
    }

    /// Per server, the session ID (the wrapper's PID) of every live task wrapper under `directory`.
    static func sessions(under directory: String) -> [ServerID: [Int32]] {
        scan(under: directory).mapValues { $0.map(\.pid) }
    }

    private static func scan(under directory: String) -> [ServerID: [(attempt: String, pid: Int32)]] {
        var result: [ServerID: [(attempt: String, pid: Int32)]] = [:]
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return result }
        for entry in entries {
            guard let pid = Int32(entry), getsid(pid) == pid,
                let environ = FileManager.default.contents(atPath: "/proc/\(entry)/environ")
            else { continue }
            if let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")"),
                stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
            {
                continue
            }
            var variables: [String: String] = [:]
            for item in environ.split(separator: 0) {
                let text = String(decoding: item, as: UTF8.self)
                guard let equals = text.firstIndex(of: "=") else { continue }
                variables[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            guard let task = variables["TOUCHSTONE_TASK_ID"], let attempt = variables["TOUCHSTONE_ATTEMPT"],
                let workdir = variables["TOUCHSTONE_WORKDIR"], workdir.hasPrefix(directory + "/agents/")
            else { continue }
            let serverName = workdir.dropFirst((directory + "/agents/").count).split(separator: "/").first.map(String.init)
            guard let serverName, let server = ServerID(rawValue: serverName) else { continue }
            result[server, default: []].append(("\(task)/\(attempt)", pid))
        }
        return result
    }
}
