import Domain
import Foundation
import Logging
import Wire

/// Runs task attempts as Docker containers through the Docker Engine API (v1.41) on the engine's unix socket.
///
/// Each attempt is one container named `touchstone-<server>-<task>-<attempt>` (so the engine itself refuses a second
/// start of an attempt), with the labels `touchstone.backend`, `.task`, `.attempt`, `.request`, `.directory`,
/// `.outputs` and `touchstone.server`; the task's `directory/work` is bind-mounted at `/workspace`, its working
/// directory; network mode `none`; docker-init as PID 1 (signals reach the command, zombies are reaped); the booked
/// GPUs as a `DeviceRequest` (driver `nvidia`); the agent's memory and CPU limits. When the container ends its
/// output is written to `directory/stdout.log` and `directory/stderr.log`, its outputs are collected, its end is
/// reported, and then it is removed.
///
/// The image is the task's ``TaskSpec/image``, else ``RuntimeOptions/defaultImage``; with neither the start fails.
/// A missing image is pulled only under ``RuntimeOptions/PullPolicy/ifMissing``.
///
/// When the agent ends without stopping them, containers keep running: the next agent takes them over with
/// ``adopt(_:)``. Containers without Touchstone's labels, or of another server's scope, are never touched.
public actor DockerRuntime: TaskRuntime {
    struct Supervised: Sendable {
        var attempt: TaskAttempt
        var containerID: String
        var labels: [String: String]
        var directory: String
        var outputs: [String]
        var startedAt: Date?
        var pid: Int32?
        var timeoutSeconds: Int?
    }

    /// The engine client.
    public nonisolated let client: DockerClient
    /// The `touchstone.server` label of every container this runtime starts or lists.
    public nonisolated let scope: String
    nonisolated let options: RuntimeOptions
    private let logger: Logger
    private let work: AsyncStream<Supervised>
    private let workSink: AsyncStream<Supervised>.Continuation
    private var running: [TaskAttempt: String] = [:]
    private var starting: Set<TaskAttempt> = []
    private var stopping: Set<TaskAttempt> = []
    private var timedOut: Set<TaskAttempt> = []

    /// The directory the task's `work` directory is mounted at, and its working directory.
    public static let containerWorkdir = "/workspace"

    /// - Parameters:
    ///   - client: The engine client.
    ///   - scope: The agent's server name (`touchstone.server` label).
    ///   - options: Default image, pull policy, limits.
    ///   - logger: The agent's logger.
    public init(client: DockerClient, scope: String, options: RuntimeOptions, logger: Logger) {
        self.client = client
        self.scope = scope
        self.options = options
        self.logger = logger
        (work, workSink) = AsyncStream.makeStream(of: Supervised.self)
    }

    public nonisolated var kind: RuntimeKind { .docker }
    public nonisolated var summary: String { "docker at \(client.socketPath)" }

    /// The container name of an attempt: `touchstone-<server>-<task>-<attempt>`.
    public nonisolated func containerName(_ attempt: TaskAttempt) -> String {
        "touchstone-\(scope)-\(attempt.taskID.rawValue)-\(attempt.attempt)"
    }

    public func start(
        _ attempt: TaskAttempt, spec: TaskSpec, labels: [String: String], directory: String
    ) async -> TaskStatusReport {
        var report = TaskStatusReport(
            taskID: attempt.taskID, attempt: attempt.attempt, state: .failedToStart, labels: labels)
        guard running[attempt] == nil, !starting.contains(attempt) else {
            report.reason = "attempt \(attempt) is already running in a container"
            return report
        }
        starting.insert(attempt)
        defer { starting.remove(attempt) }
        guard let image = spec.image ?? options.defaultImage else {
            report.reason =
                "the task names no image and this agent has no default image: submit it with --image, "
                + "or start the agent with --default-image"
            return report
        }
        do {
            try Workspace.prepare(directory: directory, files: spec.files)
        } catch {
            report.reason = "could not prepare the working directory: \(error)"
            return report
        }
        let name = containerName(attempt)
        var allLabels = labels
        allLabels[serverLabel] = scope
        let body = Self.createBody(
            attempt: attempt, spec: spec, image: image, labels: allLabels, directory: directory, options: options)
        let id: String
        do {
            try await ensureImage(image)
            id = try await client.createContainer(name: name, body: body)
        } catch {
            report.reason = Self.reason(error)
            logger.error("task start failed", metadata: ["task.id": "\(attempt.taskID)", "error": "\(error)"])
            return report
        }
        do {
            try await client.startContainer(id)
            let inspected = try await client.inspectContainer(id)
            report.pid = inspected?.state.pid
        } catch {
            report.reason = "could not start container \(name): \(Self.reason(error))"
            try? await client.removeContainer(id)
            return report
        }
        report.state = .running
        report.startedAt = Date()
        running[attempt] = id
        workSink.yield(
            Supervised(
                attempt: attempt, containerID: id, labels: labels, directory: directory, outputs: spec.outputs,
                startedAt: report.startedAt, pid: report.pid, timeoutSeconds: spec.timeoutSeconds))
        return report
    }

    /// The body of `POST /containers/create` for an attempt.
    ///
    /// The environment is the spec's, plus `HOME`, `LANG`, `TOUCHSTONE_TASK_ID`, `TOUCHSTONE_ATTEMPT` and
    /// `TOUCHSTONE_WORKDIR` (`/workspace`). GPUs: the indices in `NVIDIA_VISIBLE_DEVICES` (which the agent sets to the
    /// booked GPUs) become the `DeviceRequest`'s `DeviceIDs`; inside the container those GPUs are renumbered from 0,
    /// so `CUDA_VISIBLE_DEVICES` and `NVIDIA_VISIBLE_DEVICES` are not passed on.
    static func createBody(
        attempt: TaskAttempt, spec: TaskSpec, image: String, labels: [String: String], directory: String,
        options: RuntimeOptions
    ) -> ContainerCreateBody {
        var environment = spec.environment
        let gpus = (environment["NVIDIA_VISIBLE_DEVICES"] ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
        environment["CUDA_VISIBLE_DEVICES"] = nil
        environment["NVIDIA_VISIBLE_DEVICES"] = nil
        environment["HOME"] = environment["HOME"] ?? containerWorkdir
        environment["LANG"] = environment["LANG"] ?? "C.UTF-8"
        environment["TOUCHSTONE_TASK_ID"] = attempt.taskID.rawValue
        environment["TOUCHSTONE_ATTEMPT"] = String(attempt.attempt)
        environment["TOUCHSTONE_WORKDIR"] = containerWorkdir
        let devices =
            gpus.isEmpty
            ? [] : [ContainerCreateBody.DeviceRequest(driver: "nvidia", deviceIDs: gpus, capabilities: [["gpu"]])]
        return ContainerCreateBody(
            image: image, command: spec.command,
            environment: environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" },
            workingDirectory: containerWorkdir, labels: labels,
            hostConfig: .init(
                binds: ["\(directory)/work:\(containerWorkdir)"], networkMode: "none", initProcess: true,
                memory: options.memoryBytes ?? 0, nanoCPUs: options.nanoCPUs ?? 0, deviceRequests: devices))
    }

    /// Makes sure the image is on the host, pulling it under the `if-missing` policy.
    private func ensureImage(_ image: String) async throws {
        if try await client.imageExists(image) { return }
        switch options.pullPolicy {
        case .never:
            throw RuntimeError(
                .imageMissing,
                "image \(image) is not on this host and the pull policy is never: load it first "
                    + "(docker load, or docker import of a root file system)")
        case .ifMissing:
            try await client.pull(image)
        }
    }

    private static func reason(_ error: any Error) -> String {
        if let error = error as? RuntimeError { return error.description }
        return "\(error)"
    }

    public func stop(_ attempt: TaskAttempt, grace: Duration) async -> Bool {
        guard let id = running[attempt] else { return false }
        stopping.insert(attempt)
        let (seconds, attoseconds) = grace.components
        let graceSeconds = Int(max(0, seconds)) + (attoseconds > 0 ? 1 : 0)
        do {
            // The engine sends the stop signal, waits up to t seconds, then SIGKILLs the container: every process in
            // its PID namespace ends with it.
            try await client.stopContainer(id, graceSeconds: graceSeconds)
        } catch {
            logger.error("container stop failed", metadata: ["task.id": "\(attempt.taskID)", "error": "\(error)"])
            return true
        }
        // The supervisor reports the end; wait (briefly) for it so that the caller sees the final report.
        let deadline = ContinuousClock.now + .seconds(10)
        while running[attempt] != nil, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        return true
    }

    public func run(onExit: @escaping @Sendable (TaskStatusReport) async -> Void) async {
        await withDiscardingTaskGroup { group in
            for await item in work {
                group.addTask {
                    let report = await withTaskGroup(of: TaskStatusReport?.self) { attemptGroup in
                        attemptGroup.addTask { await self.supervise(item) }
                        if let limit = item.timeoutSeconds {
                            attemptGroup.addTask {
                                try? await Task.sleep(for: .seconds(limit))
                                if !Task.isCancelled { await self.timeOut(item.attempt) }
                                return nil
                            }
                        }
                        var final: TaskStatusReport?
                        for await result in attemptGroup where result != nil {
                            final = result
                            attemptGroup.cancelAll()
                        }
                        return final
                    }
                    // nil: cancelled (the agent is going away); the container keeps running for the next agent.
                    guard let report else { return }
                    await onExit(report)
                    await self.forget(item.attempt)
                    do {
                        try await self.client.removeContainer(item.containerID)
                    } catch {
                        self.logger.warning(
                            "container remove failed", metadata: ["task.id": "\(item.attempt.taskID)", "error": "\(error)"])
                    }
                }
            }
        }
    }

    public nonisolated func finish() { workSink.finish() }

    public func killAll() async {
        for (attempt, id) in running {
            stopping.insert(attempt)
            do {
                try await client.killContainer(id)
            } catch {
                logger.error("container kill failed", metadata: ["task.id": "\(attempt.taskID)", "error": "\(error)"])
            }
        }
    }

    public var runningCount: Int { running.count }

    public func inventory() async throws -> [TaskStatusReport] {
        let containers = try await client.listContainers(labels: ["touchstone.task", "\(serverLabel)=\(scope)"])
        var reports: [TaskStatusReport] = []
        for container in containers {
            guard let task = container.labels["touchstone.task"].flatMap({ TaskID.isValid($0) ? TaskID(rawValue: $0) : nil }),
                let attempt = container.labels["touchstone.attempt"].flatMap({ Int($0) })
            else { continue }
            var report = TaskStatusReport(taskID: task, attempt: attempt, state: .running, labels: container.labels)
            if container.state != "running" {
                report.state = .exited
                if let inspected = try await client.inspectContainer(container.id) {
                    report.exitCode = inspected.state.exitCode
                    report.state = inspected.state.running ? .running : .exited
                    report.pid = inspected.state.running ? inspected.state.pid : nil
                }
            } else if let inspected = try await client.inspectContainer(container.id) {
                report.pid = inspected.state.pid
            }
            reports.append(report)
        }
        return reports.sorted { $0.key < $1.key }
    }

    public func adopt(_ report: TaskStatusReport) async throws -> TaskStatusReport {
        let attempt = report.key
        if running[attempt] != nil { return report }
        var labels = report.labels
        labels[serverLabel] = nil
        let directory = report.labels["touchstone.directory"] ?? ""
        let outputs = report.outputPaths
        guard let inspected = try await client.inspectContainer(containerName(attempt)) else {
            var ended = report
            ended.state = .exited
            ended.endedAt = Date()
            ended.reason = "the container ended and was removed while the agent was down; no exit code was recorded"
            return ended
        }
        if inspected.state.running {
            running[attempt] = inspected.id
            var adopted = report
            adopted.state = .running
            adopted.pid = inspected.state.pid
            workSink.yield(
                Supervised(
                    attempt: attempt, containerID: inspected.id, labels: labels, directory: directory,
                    outputs: outputs, startedAt: report.startedAt, pid: inspected.state.pid, timeoutSeconds: nil))
            logger.info("container adopted", metadata: ["task.id": "\(attempt.taskID)", "container": "\(inspected.id)"])
            return adopted
        }
        var ended = await finalReport(
            Supervised(
                attempt: attempt, containerID: inspected.id, labels: labels, directory: directory, outputs: outputs,
                startedAt: report.startedAt, pid: report.pid, timeoutSeconds: nil),
            exitCode: inspected.state.exitCode, inspected: inspected)
        if Self.diedWithTheHost(exitCode: inspected.state.exitCode, oomKilled: inspected.state.oomKilled ?? false) {
            // Not the task's exit: reported without an exit code, which the backend takes as lost (infrastructure,
            // retried; issue 17 part 4).
            ended.exitCode = nil
            ended.reason = "the container's process died with the Docker daemon or the host while the agent was down "
                + "(Docker recorded exit code 255); no exit code of the task was recorded"
        }
        try await client.removeContainer(inspected.id)
        return ended
    }

    /// Whether a container found ended at adoption died with its daemon or host rather than by its own exit: Docker
    /// marks a container whose process it lost across a daemon restart or a reboot with exit code 255 (moby's
    /// `daemon.restore`). A task's own `exit 255` while the agent was down reads the same and is retried: retrying a
    /// user's failure once is the lesser error than failing a task for a reboot. Pure.
    static func diedWithTheHost(exitCode: Int32?, oomKilled: Bool) -> Bool {
        exitCode == 255 && !oomKilled
    }

    /// A process is a task's when it is in the same cgroup as a task container's PID 1 (`/proc/<pid>/cgroup`), that
    /// is, in the container; the host PIDs of processes inside a container are not in the container's process groups.
    public nonisolated func processOwner(of taskPIDs: [Int32]) -> @Sendable (Int32) -> Bool {
        let cgroups = Set(taskPIDs.compactMap(Self.cgroup(of:)))
        return { pid in Self.cgroup(of: pid).map { cgroups.contains($0) } ?? false }
    }

    /// The contents of `/proc/<pid>/cgroup`, `nil` when unreadable (or the root cgroup, which is not a container's).
    static func cgroup(of pid: Int32) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n").filter { !$0.hasSuffix(":/") }
        return lines.isEmpty ? nil : lines.joined(separator: "\n")
    }

    // MARK: Supervision

    /// Waits for a container to end and builds its final report; `nil` when cancelled first.
    private nonisolated func supervise(_ item: Supervised) async -> TaskStatusReport? {
        var backoff = Duration.milliseconds(200)
        while !Task.isCancelled {
            do {
                let code = try await client.wait(item.containerID)
                let inspected = try? await client.inspectContainer(item.containerID)
                return await finalReport(item, exitCode: code, inspected: inspected)
            } catch {
                if Task.isCancelled || error is CancellationError { return nil }
                if let runtimeError = error as? RuntimeError, runtimeError.code == .notFound {
                    var report = await finalReport(item, exitCode: nil, inspected: nil)
                    report.reason = "the container was removed by someone else; no exit code was recorded"
                    return report
                }
                // Docker restarting or unreachable: the container may well still run. Keep waiting.
                logger.warning(
                    "waiting for a container failed; retrying",
                    metadata: ["task.id": "\(item.attempt.taskID)", "error": "\(error)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(10))
            }
        }
        return nil
    }

    /// The final report of an ended container: exit code, logs written to the attempt's directory, outputs.
    private func finalReport(_ item: Supervised, exitCode: Int32?, inspected: ContainerInspect?) async
        -> TaskStatusReport
    {
        let wasStopped = stopping.contains(item.attempt) && !timedOut.contains(item.attempt)
        let wasTimedOut = timedOut.contains(item.attempt)
        running[item.attempt] = nil
        var report = TaskStatusReport(
            taskID: item.attempt.taskID, attempt: item.attempt.attempt, state: wasStopped ? .stopped : .exited,
            pid: item.pid, startedAt: item.startedAt, endedAt: Date(), exitCode: exitCode, labels: item.labels)
        if let code = exitCode, code != 0 {
            report.reason =
                code > 128 && code < 160
                ? "exit code \(code) (128+\(code - 128): the command was killed by signal \(code - 128)?)"
                : "exit code \(code)"
        }
        if inspected?.state.oomKilled == true {
            report.reason = "killed for exceeding the container's memory limit (exit code \(exitCode ?? -1))"
        }
        if wasTimedOut {
            report.exitCode = exitCode ?? 124
            report.reason = "timed out after \(item.timeoutSeconds ?? 0)s and was stopped"
        }
        if wasStopped { report.reason = "stopped on request" + (report.reason.map { " (\($0))" } ?? "") }
        do {
            try await client.logs(
                item.containerID, stdout: item.directory + "/stdout.log", stderr: item.directory + "/stderr.log")
        } catch {
            logger.warning("container logs not saved", metadata: ["task.id": "\(item.attempt.taskID)", "error": "\(error)"])
        }
        report.outputs = Workspace.collectOutputs(item.outputs, in: item.directory + "/work")
        return report
    }

    /// Stops an attempt that ran past its `timeoutSeconds` (10 seconds' grace).
    private func timeOut(_ attempt: TaskAttempt) async {
        guard running[attempt] != nil else { return }
        timedOut.insert(attempt)
        _ = await stop(attempt, grace: .seconds(10))
    }

    private func forget(_ attempt: TaskAttempt) {
        stopping.remove(attempt)
        timedOut.remove(attempt)
    }
}
