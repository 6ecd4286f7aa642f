import Domain
import Foundation
import Logging
import Subprocess
import Synchronization
import Wire

#if canImport(Glibc)
import Glibc
#endif

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Runs task attempts as child processes: each in its own session (`setsid`), in a cgroup of its own where the host
/// allows one, with stdout and stderr in files of its working directory.
///
/// Call ``run(onExit:)`` once, inside the agent's task group: it supervises every process started with
/// ``start(_:spec:labels:directory:)`` or taken over with ``adopt(_:)``, and reports each end through `onExit`.
///
/// A task that names an image cannot run here: its start fails with a reason saying so.
///
/// Every process started here carries its labels where ``inventory()`` finds them after an agent restart: the wrapper
/// (a session leader) has `TOUCHSTONE_RUNTIME_SCOPE`, `TOUCHSTONE_TASK_ID`, `TOUCHSTONE_ATTEMPT` and
/// `TOUCHSTONE_DIRECTORY` in its environment, and the attempt's directory holds `labels.json`. Processes without them
/// are never listed or signalled.
public actor ProcessRuntime: TaskRuntime {
    enum Work: Sendable {
        case launch(Launch)
        case adopted(TaskStatusReport)
    }

    struct Launch: Sendable {
        var attempt: TaskAttempt
        var spec: TaskSpec
        var labels: [String: String]
        var directory: String
        var reply: CheckedContinuation<TaskStatusReport, Never>
    }

    struct Running: Sendable {
        var pid: Int32
        var cgroup: String?
    }

    private let launches: AsyncStream<Work>
    let launchSink: AsyncStream<Work>.Continuation
    var running: [TaskAttempt: Running] = [:]
    var stopping: Set<TaskAttempt> = []
    /// Attempts killed by ``killAll()``: the agent's own shutdown, not a `stopTask`.
    var killedAtShutdown: Set<TaskAttempt> = []
    private var timedOut: Set<TaskAttempt> = []
    let cgroups: CgroupController?
    private let logger: Logger
    /// The `touchstone.server` label (and `TOUCHSTONE_RUNTIME_SCOPE`) of every process this runtime starts or lists.
    public nonisolated let scope: String
    /// When set, ``inventory()`` lists only attempts whose directory is under it.
    public nonisolated let workspace: String?
    /// The user tasks run as (`touchstone-agent --run-as`); `nil`: the agent's own.
    public nonisolated let runAs: RunAsUser?

    /// - Parameters:
    ///   - cgroups: Where to make per-task cgroups; `nil` falls back to process-group kills.
    ///   - scope: The agent's server name; processes of another scope are never listed or adopted.
    ///   - logger: The agent's logger.
    ///   - workspace: When set, only attempts whose directory is under it are listed by ``inventory()``.
    ///   - runAs: The user tasks run as: the wrapper joins the cgroup as the agent's user, then runs the command
    ///     through `setpriv` as this one, in a working directory it owns.
    public init(
        cgroups: CgroupController?, scope: String = "", workspace: String? = nil, runAs: RunAsUser? = nil,
        logger: Logger
    ) {
        self.workspace = workspace
        self.runAs = runAs
        (launches, launchSink) = AsyncStream.makeStream(of: Work.self)
        self.cgroups = cgroups
        self.scope = scope
        self.logger = logger
    }

    public nonisolated var kind: RuntimeKind { .process }
    public nonisolated var summary: String { "processes, kill by \(killMechanism)" }

    /// Which kill mechanism this runtime uses: `cgroup-v2`, `cgroup-v1-freezer` or `process-group`.
    public nonisolated var killMechanism: String {
        switch cgroups?.kind {
        case .v2: return "cgroup-v2"
        case .v1Freezer: return "cgroup-v1-freezer"
        case nil: return "process-group"
        }
    }

    /// Starts one attempt and returns once its process runs (or could not start).
    ///
    /// - Parameters:
    ///   - attempt: The (task, attempt) being started.
    ///   - spec: Command, environment, working files and outputs.
    ///   - labels: `touchstone.backend`, `.task`, `.attempt`, `.request`, kept in the report.
    ///   - directory: The attempt's directory; the command runs in `directory/work`, logs go to
    ///     `directory/stdout.log` and `directory/stderr.log`.
    /// - Returns: A report in state `running` with the PID, or `failedToStart` with the reason.
    public func start(
        _ attempt: TaskAttempt, spec: TaskSpec, labels: [String: String], directory: String
    ) async -> TaskStatusReport {
        if let image = spec.image {
            return TaskStatusReport(
                taskID: attempt.taskID, attempt: attempt.attempt, state: .failedToStart,
                reason: "\(RuntimeError.Code.imageNotSupported): the task asks for image \(image), but this agent runs "
                    + "tasks as processes (--runtime process); run it on an agent started with --runtime docker",
                labels: labels)
        }
        return await withCheckedContinuation { continuation in
            launchSink.yield(
                .launch(Launch(attempt: attempt, spec: spec, labels: labels, directory: directory, reply: continuation)))
        }
    }

    /// Whether an attempt's process is running under this runtime.
    public func isRunning(_ attempt: TaskAttempt) -> Bool { running[attempt] != nil }

    /// Stops an attempt: SIGTERM to its process group, then after `grace` SIGKILL to its whole tree (cgroup kill or
    /// process-group kill). Returns once the signals are sent; the end is reported through `onExit`.
    ///
    /// - Returns: `false` when the attempt is not running here.
    public func stop(_ attempt: TaskAttempt, grace: Duration) async -> Bool {
        guard let process = running[attempt] else { return false }
        stopping.insert(attempt)
        kill(-process.pid, SIGTERM)
        let deadline = ContinuousClock.now + grace
        while running[attempt] != nil, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if let still = running[attempt] { killTree(still) }
        return true
    }

    /// Supervises launches until cancelled. On cancellation every running process tree is killed.
    ///
    /// - Parameter onExit: Called once per attempt with its final report (exited, stopped or failedToStart).
    public func run(onExit: @escaping @Sendable (TaskStatusReport) async -> Void) async {
        await withDiscardingTaskGroup { group in
            for await work in launches {
                guard case .launch(let launch) = work else {
                    if case .adopted(let report) = work {
                        group.addTask { await onExit(await self.superviseAdopted(report)) }
                    }
                    continue
                }
                group.addTask {
                    let report = await withTaskGroup(of: TaskStatusReport?.self) { attemptGroup in
                        attemptGroup.addTask { await self.execute(launch) }
                        if let limit = launch.spec.timeoutSeconds {
                            attemptGroup.addTask {
                                try? await Task.sleep(for: .seconds(min(max(limit, 0), TaskSpec.maximumTimeoutSeconds)))
                                if !Task.isCancelled { await self.timeOut(launch.attempt) }
                                return nil
                            }
                        }
                        var final: TaskStatusReport?
                        for await result in attemptGroup {
                            if let result {
                                final = result
                                attemptGroup.cancelAll()
                            }
                        }
                        return final!
                    }
                    await self.forget(launch.attempt)
                    await onExit(report)
                }
            }
        }
    }

    /// Ends the supervisor loop once the running processes have ended.
    public nonisolated func finish() { launchSink.finish() }

    /// Kills every running process tree now (started or adopted); their ends are reported as `stopped`.
    public func killAll() {
        for (attempt, process) in running {
            stopping.insert(attempt)
            killedAtShutdown.insert(attempt)
            killTree(process)
        }
    }

    /// The number of running processes.
    public var runningCount: Int { running.count }

    private func killTree(_ process: Running) {
        if let cgroup = process.cgroup, let cgroups { cgroups.killAll(cgroup) }
        kill(-process.pid, SIGKILL)
    }

    private func register(_ attempt: TaskAttempt, _ process: Running) { running[attempt] = process }

    private func unregister(_ attempt: TaskAttempt) -> (Running?, Bool) {
        let process = running.removeValue(forKey: attempt)
        let wasStopped = stopping.remove(attempt) != nil
        return (process, wasStopped && !timedOut.contains(attempt))
    }

    /// Stops an attempt that ran past its `timeoutSeconds` (10 seconds' grace).
    private func timeOut(_ attempt: TaskAttempt) async {
        guard running[attempt] != nil else { return }
        timedOut.insert(attempt)
        _ = await stop(attempt, grace: .seconds(10))
    }

    private func forget(_ attempt: TaskAttempt) { timedOut.remove(attempt) }

    /// The shell wrapper: join the cgroup, then run the command, keeping its exit code (also written to a file so
    /// that a restarted agent can read the outcome of a process it no longer supervises). The wrapper catches SIGTERM
    /// with a no-op handler (reset to the default in the command, as every handler is on exec), so that a graceful
    /// stop lets the command run its own handler and end before the wrapper records its exit code.
    static let wrapper = """
        if [ -n "$1" ]; then echo $$ > "$1" || exit 125; fi
        exitfile="$2"; shift 2
        trap : TERM
        "$@"
        code=$?
        echo "$code" > "$exitfile.tmp" && mv "$exitfile.tmp" "$exitfile"
        exit "$code"
        """

    private nonisolated func execute(_ launch: Launch) async -> TaskStatusReport {
        let attempt = launch.attempt
        var report = TaskStatusReport(
            taskID: attempt.taskID, attempt: attempt.attempt, state: .failedToStart, labels: launch.labels)
        let work = launch.directory + "/work"
        let stdoutFD: FileDescriptor
        let stderrFD: FileDescriptor
        do {
            try Workspace.prepare(directory: launch.directory, files: launch.spec.files)
            var labels = launch.labels
            labels[serverLabel] = scope
            try JSONEncoder().encode(labels).write(to: URL(fileURLWithPath: launch.directory + "/labels.json"))
            stdoutFD = try FileDescriptor.open(
                FilePath(launch.directory + "/stdout.log"), .writeOnly, options: [.create, .append],
                permissions: [.ownerReadWrite, .groupRead])
            stderrFD = try FileDescriptor.open(
                FilePath(launch.directory + "/stderr.log"), .writeOnly, options: [.create, .append],
                permissions: [.ownerReadWrite, .groupRead])
        } catch {
            report.reason = "could not prepare the working directory: \(error)"
            launch.reply.resume(returning: report)
            return report
        }
        if let runAs, let refusal = runAs.own(work) {
            report.reason = refusal
            launch.reply.resume(returning: report)
            return report
        }
        let cgroup = try? cgroups?.create("\(attempt.taskID)-\(attempt.attempt)")
        let procsFile = cgroup.flatMap { path in cgroups?.procsFile(path) } ?? ""
        var environment: [String: String] = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
            "HOME": work,
            "LANG": "C.UTF-8",
            "TOUCHSTONE_TASK_ID": attempt.taskID.rawValue,
            "TOUCHSTONE_ATTEMPT": String(attempt.attempt),
            "TOUCHSTONE_WORKDIR": work,
        ]
        for (key, value) in launch.spec.environment { environment[key] = value }
        // What inventory() looks for; set after the spec's environment so that a task cannot hide from it.
        environment["TOUCHSTONE_RUNTIME_SCOPE"] = scope
        environment["TOUCHSTONE_TASK_ID"] = attempt.taskID.rawValue
        environment["TOUCHSTONE_ATTEMPT"] = String(attempt.attempt)
        environment["TOUCHSTONE_DIRECTORY"] = launch.directory
        var options = PlatformOptions()
        options.createSession = true
        let configuration = Configuration(
            executable: .path("/bin/sh"),
            arguments: Arguments(
                ["-c", Self.wrapper, "touchstone-task", procsFile, launch.directory + "/exit-code"]
                    + (runAs?.commandPrefix ?? []) + launch.spec.command),
            // NUL-terminated: Subprocess 1.0.2 strdup()s each entry (its validation allows one trailing NUL).
            environment: .custom(environment.sorted { $0.key < $1.key }.map { Array("\($0.key)=\($0.value)".utf8) + [0] }),
            workingDirectory: FilePath(work),
            platformOptions: options)
        let replied = ReplyOnce(launch.reply)
        let startedAt = Date()
        do {
            let result = try await Subprocess.run(
                configuration, input: .none,
                output: .fileDescriptor(stdoutFD, closeAfterSpawningProcess: true),
                error: .fileDescriptor(stderrFD, closeAfterSpawningProcess: true)
            ) { execution in
                let pid = execution.processIdentifier.value
                await self.register(attempt, Running(pid: pid, cgroup: cgroup))
                var running = report
                running.state = .running
                running.pid = pid
                running.startedAt = startedAt
                replied.resume(running)
            }
            let (process, wasStopped) = await unregister(attempt)
            report.pid = process?.pid
            report.startedAt = startedAt
            report.endedAt = Date()
            switch result.terminationStatus {
            case .exited(let code):
                report.exitCode = code
                report.reason =
                    code == 0
                    ? nil
                    : code > 128 && code < 160
                        ? "exit code \(code) (128+\(code - 128): the command was killed by signal \(code - 128)?)"
                        : "exit code \(code)"
            case .signaled(let signal):
                report.signal = signal
                report.reason = "killed by signal \(signal)"
            }
            report.state = wasStopped ? .stopped : .exited
            if await self.timedOut.contains(attempt) {
                report.state = .exited
                report.exitCode = report.exitCode ?? 124
                report.reason = "timed out after \(launch.spec.timeoutSeconds ?? 0)s and was stopped"
            }
            if wasStopped {
                let cause =
                    await self.killedAtShutdown.contains(attempt)
                    ? "stopped by the agent's shutdown at its drain deadline" : "stopped on request"
                report.reason = cause + (report.reason.map { " (\($0))" } ?? "")
            }
            report.outputs = Workspace.collectOutputs(launch.spec.outputs, in: work)
        } catch {
            _ = await unregister(attempt)
            report.state = .failedToStart
            report.reason = "could not start: \(error)"
            logger.error("task start failed", metadata: ["task.id": "\(attempt.taskID)", "error": "\(error)"])
        }
        if let pid = report.pid {
            // Whatever the command left running in its process group dies with it (cgroup or not).
            kill(-pid, SIGKILL)
        }
        if let cgroup, let cgroups {
            // Whatever the command left behind in its cgroup (daemonised children) dies with it.
            if !cgroups.members(cgroup).isEmpty { cgroups.killAll(cgroup) }
            cgroups.remove(cgroup)
        }
        replied.resume(report)
        return report
    }
}

/// Resumes a continuation at most once.
final class ReplyOnce: Sendable {
    private let state: Mutex<CheckedContinuation<TaskStatusReport, Never>?>
    init(_ continuation: CheckedContinuation<TaskStatusReport, Never>) { state = Mutex(continuation) }
    func resume(_ report: TaskStatusReport) {
        state.withLock { continuation in
            continuation?.resume(returning: report)
            continuation = nil
        }
    }
}
