import Domain
import EventStore
import Foundation
import Projections
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Where the processes of a bench run talk: the embedded queue file in the state directory, or SQS on an endpoint
/// (ministack here; credentials from the environment, as `touchstone` and `touchstone-agent` read them).
enum BenchTransport: Sendable, Equatable {
    case embedded
    case sqs(endpoint: String, region: String)

    var name: String {
        switch self {
        case .embedded: "embedded"
        case .sqs: "sqs"
        }
    }
}

/// The real processes of one measurement: `touchstone serve` and `touchstone-agent`s from one bin directory, on one
/// state directory, with their output in files beside it; plus the bench's own handle on the event log.
///
/// Servers are attached with the `touchstone server attach` binary, as an operator would; tasks are submitted
/// in-process exactly as `touchstone task submit` does (``submit(_:)``), so that the figure excludes the CLI's process
/// start.
final class Cluster: Sendable {
    let directory: String
    let binaries: String
    let transport: BenchTransport
    let queuePrefix: String
    let log: TouchstoneLog
    private let processes = Mutex<[String: (Process, ExitWatch)]>([:])

    /// - Parameters:
    ///   - directory: A new directory for this run: `state/` (the log, the embedded queue), `agents/<server>/`
    ///     (workspaces) and one `<process>.log` per process.
    ///   - binaries: The directory holding `touchstone` and `touchstone-agent`.
    init(directory: String, binaries: String, transport: BenchTransport) throws {
        self.directory = directory
        self.binaries = binaries
        self.transport = transport
        self.queuePrefix = "bench\(UInt32.random(in: 0...UInt32.max) % 1_000_000)"
        try FileManager.default.createDirectory(atPath: directory + "/state", withIntermediateDirectories: true)
        self.log = try TouchstoneLog(path: directory + "/state/touchstone.db")
    }

    var state: String { directory + "/state" }

    /// The transport options `touchstone` takes (global options) and `touchstone-agent` takes (its own).
    var transportArguments: [String] {
        switch transport {
        case .embedded: ["--transport", "embedded", "--queue-prefix", queuePrefix]
        case .sqs(let endpoint, let region):
            ["--transport", "sqs", "--sqs-endpoint", endpoint, "--sqs-region", region, "--queue-prefix", queuePrefix]
        }
    }

    /// `touchstone server attach NAME --max-tasks N`: creates the queues and records the attach.
    ///
    /// - Throws: ``BenchError`` when the command fails (its output is in `attach.log`).
    func attach(_ server: String, maxTasks: Int) async throws {
        let exited = ExitWatch()
        let process = try launch(
            "attach-\(server)", binaries + "/touchstone",
            ["server", "attach", server, "--max-tasks", "\(maxTasks)", "--state-dir", state] + transportArguments,
            keep: false, exited: exited)
        await exited.wait()
        guard process.terminationStatus == 0 else {
            throw BenchError("touchstone server attach \(server) failed; see \(directory)/attach-\(server).log")
        }
    }

    /// Starts `touchstone serve` with its defaults.
    func startBackend(_ extra: [String] = []) throws {
        _ = try launch("backend", binaries + "/touchstone", ["serve", "--state-dir", state] + transportArguments + extra)
    }

    /// Starts `touchstone-agent` for `server` with its defaults (process runtime).
    ///
    /// - Returns: The agent's process ID.
    @discardableResult
    func startAgent(_ server: String, _ extra: [String] = []) throws -> Int32 {
        var arguments =
            ["--server", server, "--workspace", directory + "/agents/\(server)"] + transportArguments
            + ["--backend-key", "@" + state + "/keys/backend-trusted.pub", "--allow-process-runtime", "--allow-root"]
        if transport == .embedded { arguments += ["--queue-path", state + "/queues.db"] }
        return try launch("agent-\(server)", binaries + "/touchstone-agent", arguments + extra).processIdentifier
    }

    /// The process ID of a started process, e.g. `backend` or `agent-bench-01`.
    func pid(_ name: String) -> Int32? { processes.withLock { $0[name]?.0.processIdentifier } }

    /// Submits one task the way `touchstone task submit -- COMMAND` does (TaskSubmit.run): a `task.submitted` on a
    /// new stream, by the operator.
    func submit(_ command: [String], name: String? = nil) async throws -> TaskID {
        let task = TaskID.random()
        try await log.append(
            .taskSubmitted(TaskSubmitted(taskID: task, spec: TaskSpec(name: name, command: command))),
            expectedVersion: .noStream, metadata: .init(actor: "operator:bench"))
        return task
    }

    /// Submits many tasks in appends of up to 500 (one transaction each).
    func submitMany(_ count: Int, command: [String]) async throws -> [TaskID] {
        var all: [TaskID] = []
        var index = 0
        while index < count {
            let batch = (index..<min(count, index + 500)).map { _ in TaskID.random() }
            try await log.append(
                batch.map {
                    TouchstoneLog.Append(
                        .taskSubmitted(TaskSubmitted(taskID: $0, spec: TaskSpec(command: command))),
                        expectedVersion: .noStream, metadata: .init(actor: "operator:bench"))
                })
            all += batch
            index += batch.count
        }
        return all
    }

    /// Waits until every server named has said hello (`server.hello` on its stream), at most `timeout`.
    ///
    /// - Throws: ``BenchError`` naming the servers still silent.
    func waitForHello(_ servers: [String], timeout: Duration) async throws {
        let (waiting, done) = await LogWatch.until(
            log, after: 0, timeout: timeout, initial: Set(servers.map { StreamName.server(ServerID(rawValue: $0)!) })
        ) { waiting, event in
            if event.type == "server.hello" { waiting.remove(event.stream) }
            return waiting.isEmpty
        }
        guard done else {
            throw BenchError("no hello from \(waiting.sorted().joined(separator: ", ")) within \(timeout); see \(directory)")
        }
    }

    @discardableResult
    private func launch(
        _ name: String, _ executable: String, _ arguments: [String], keep: Bool = true, exited: ExitWatch? = nil
    ) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = directory + "/\(name).log"
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardOutput = handle
        process.standardError = handle
        let watch = exited ?? ExitWatch()
        process.terminationHandler = { _ in watch.fire() }
        try process.run()
        if keep { processes.withLock { $0[name] = (process, watch) } }
        return process
    }

    /// SIGTERM to every process, up to 20 s to exit, then SIGKILL.
    func stopAll() async {
        let all = processes.withLock { current in
            defer { current.removeAll() }
            return Array(current.values)
        }
        for (process, _) in all where process.isRunning { process.terminate() }
        let deadline = ContinuousClock.now + .seconds(20)
        for (process, exited) in all {
            await exited.wait(until: deadline)
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                await exited.wait()
            }
        }
    }
}

/// Resumes waiters when a process exits (set as its `terminationHandler` before it runs).
final class ExitWatch: Sendable {
    private struct State {
        var exited = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    /// Called by the process's termination handler.
    func fire() {
        let waiters = state.withLock { state in
            state.exited = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the process has exited.
    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state in
                if state.exited { return true }
                state.waiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Returns once the process has exited or at `deadline`, whichever is first.
    func wait(until deadline: ContinuousClock.Instant) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.wait() }
            group.addTask { try? await Task.sleep(until: deadline) }
            _ = await group.next()
            group.cancelAll()
        }
    }
}

/// Busy processes that saturate the cores (row 7): one `sh -c 'while :; do :; done'` per core, started and stopped
/// by the bench.
final class CPUHog {
    private let processes: [Process]

    /// Starts `count` busy loops.
    init(count: Int) throws {
        var started: [Process] = []
        for _ in 0..<count {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "while :; do :; done"]
            try process.run()
            started.append(process)
        }
        processes = started
    }

    /// SIGKILLs every busy loop.
    func stop() {
        for process in processes where process.isRunning { kill(process.processIdentifier, SIGKILL) }
        for process in processes { process.waitUntilExit() }
    }
}

/// A failure of the bench itself, in one line.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
