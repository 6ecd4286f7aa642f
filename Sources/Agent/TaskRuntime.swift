import Domain
import Foundation
import Logging
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// Where an agent runs task attempts: as processes (``ProcessRuntime``) or as Docker containers (``DockerRuntime``).
///
/// Every attempt a runtime starts carries the labels `touchstone.backend`, `touchstone.task`, `touchstone.attempt`,
/// `touchstone.request` (given by the caller) and `touchstone.server` (the runtime's scope, added by the runtime), so
/// that ``inventory()`` can tell what really runs for this agent after a restart. Work without these labels
/// (engineers' own processes and containers) is never listed, stopped or removed.
///
/// Call ``run(onExit:)`` once, inside the agent's task group: it supervises every attempt started with
/// ``start(_:spec:labels:directory:)`` or taken over with ``adopt(_:)`` and reports each end through `onExit`.
public protocol TaskRuntime: Sendable {
    /// `process` or `docker`.
    var kind: RuntimeKind { get }

    /// A short description for the agent's startup log, e.g. `cgroup-v2` or `docker at /var/run/docker.sock`.
    var summary: String { get }

    /// Starts one attempt and returns once it runs (or could not start).
    ///
    /// Never starts an attempt twice: a second start of the same attempt returns `failedToStart`.
    ///
    /// - Parameters:
    ///   - attempt: The (task, attempt) being started.
    ///   - spec: Image, command, environment, working files and outputs.
    ///   - labels: `touchstone.backend`, `.task`, `.attempt`, `.request`, kept in the report.
    ///   - directory: The attempt's directory on the host; the command's working files are in `directory/work`,
    ///     its output goes to `directory/stdout.log` and `directory/stderr.log`.
    /// - Returns: A report in state `running`, or `failedToStart` with a reason an operator can act on.
    func start(_ attempt: TaskAttempt, spec: TaskSpec, labels: [String: String], directory: String) async
        -> TaskStatusReport

    /// Stops an attempt: SIGTERM, then after `grace` SIGKILL to everything it started. Returns once it has ended
    /// or the kill was sent; the end is reported through `onExit`.
    ///
    /// - Parameters:
    ///   - attempt: The attempt to stop.
    ///   - grace: How long the attempt may take to exit after SIGTERM.
    /// - Returns: `false` when the attempt is not running under this runtime.
    func stop(_ attempt: TaskAttempt, grace: Duration) async -> Bool

    /// Supervises started and adopted attempts until ``finish()`` is called and they have ended, or until cancelled.
    ///
    /// - Parameter onExit: Called once per attempt with its final report (`exited`, `stopped` or `failedToStart`).
    func run(onExit: @escaping @Sendable (TaskStatusReport) async -> Void) async

    /// Ends the supervisor loop once the attempts it supervises have ended.
    func finish()

    /// Kills every attempt this runtime supervises, now (no grace).
    func killAll() async

    /// The number of attempts this runtime supervises that still run.
    var runningCount: Int { get async }

    /// What really runs (or ended but was not yet cleaned up) for this agent, found by labels on the host rather than
    /// from memory: one report per labelled attempt of this runtime's scope.
    ///
    /// - Returns: Reports with `labels` read back from the process or container; `state` is `running` or, for a
    ///   container that ended, `exited` with its exit code.
    /// - Throws: ``RuntimeError`` with code ``RuntimeError/Code/unreachable`` when the runtime cannot be asked (for
    ///   Docker: the engine does not answer). That never means "nothing runs".
    func inventory() async throws -> [TaskStatusReport]

    /// Takes over an attempt started by an earlier runtime instance (an earlier life of the agent).
    ///
    /// When it still runs it is supervised from now on: ``stop(_:grace:)`` works on it and its end is reported
    /// through `onExit`. When it ended meanwhile, its final report is returned and nothing more happens.
    ///
    /// - Parameter report: The attempt's last known report (journaled, or from ``inventory()``), with its labels.
    /// - Returns: `running` when it is now supervised, otherwise its final report.
    /// - Throws: ``RuntimeError`` (``RuntimeError/Code/unreachable``) when it cannot be known whether it runs.
    func adopt(_ report: TaskStatusReport) async throws -> TaskStatusReport

    /// Tells which host processes belong to running tasks (for the GPU inventory: a GPU busy with one of our tasks'
    /// processes is booked, not someone else's).
    ///
    /// - Parameter taskPIDs: The `pid` of each running task's report.
    /// - Returns: A predicate on host PIDs.
    func processOwner(of taskPIDs: [Int32]) -> @Sendable (Int32) -> Bool
}

extension TaskRuntime {
    /// A process is a task's when its process group is one the task leads (the process runtime starts every task
    /// as a session and process-group leader).
    public func processOwner(of taskPIDs: [Int32]) -> @Sendable (Int32) -> Bool {
        let groups = Set(taskPIDs)
        return { pid in groups.contains(getpgid(pid)) }
    }
}

/// The kinds of ``TaskRuntime``.
public enum RuntimeKind: String, Sendable, CaseIterable, Codable {
    /// Child processes in their own session and cgroup (``ProcessRuntime``).
    case process
    /// Docker containers through the Docker Engine API (``DockerRuntime``).
    case docker
}

/// The label every runtime adds with its scope (the agent's server name), so that two agents sharing one host (or
/// one Docker engine) never see each other's attempts.
public let serverLabel = "touchstone.server"

/// A runtime operation that failed.
public struct RuntimeError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String {
            case unreachable, imageMissing, imageNotSupported, imageRequired, engine, notFound, conflict
        }
        private let base: Base
        /// The runtime cannot be asked (Docker: the socket does not answer). Never means "nothing runs".
        public static var unreachable: Self { .init(base: .unreachable) }
        /// The task's image is not on the host and could not be pulled.
        public static var imageMissing: Self { .init(base: .imageMissing) }
        /// The task names an image, but this runtime runs processes.
        public static var imageNotSupported: Self { .init(base: .imageNotSupported) }
        /// The task names no image and the runtime has no default image.
        public static var imageRequired: Self { .init(base: .imageRequired) }
        /// The engine answered with an error (see the message: its status and text).
        public static var engine: Self { .init(base: .engine) }
        /// The container or process does not exist.
        public static var notFound: Self { .init(base: .notFound) }
        /// A container of the same name exists already (the attempt was started before).
        public static var conflict: Self { .init(base: .conflict) }
        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    public var underlying: (any Error)?

    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        "\(code): \(message)" + (underlying.map { " (\($0))" } ?? "")
    }
}

/// How an agent runs its tasks: `touchstone-agent --runtime`, `--docker-socket`, `--image-pull-policy`,
/// `--default-image`.
public struct RuntimeOptions: Sendable {
    /// Whether a missing image may be pulled.
    public enum PullPolicy: String, Sendable, CaseIterable {
        /// Never pull: a missing image fails the start with ``RuntimeError/Code/imageMissing``.
        case never
        /// Pull when the image is not on the host (`POST /images/create`); a failed pull fails the start.
        case ifMissing = "if-missing"
    }

    /// `process` (default) or `docker`.
    public var kind: RuntimeKind = .process
    /// The Docker engine's unix socket.
    public var dockerSocket: String = "/var/run/docker.sock"
    /// Whether a missing image may be pulled.
    public var pullPolicy: PullPolicy = .never
    /// The image for tasks that name none, on the docker runtime; `nil`: such tasks fail to start.
    public var defaultImage: String?
    /// A memory limit per container in bytes (`HostConfig.Memory`); `nil` for none.
    public var memoryBytes: Int64?
    /// A CPU limit per container in units of 10⁻⁹ CPUs (`HostConfig.NanoCpus`); `nil` for none.
    public var nanoCPUs: Int64?
    /// The user tasks run as on the process runtime (`--run-as`); `nil`: the agent's own.
    public var runAs: RunAsUser?

    public init() {}
}

extension RuntimeOptions {
    /// Makes the runtime these options describe.
    ///
    /// - Parameters:
    ///   - scope: The agent's server name: the `touchstone.server` label of everything the runtime starts.
    ///   - workspace: For the process runtime: only processes whose attempt directory is under it are listed (two
    ///     agents of the same name on one host, as in tests, never adopt each other's processes); `nil` for any.
    ///   - useCgroups: For the process runtime: whether to put each task in a cgroup of its own.
    ///   - cgroupScope: The cgroup directory of its tasks (default `scope`); see ``AgentConfiguration/cgroupScope``.
    ///   - logger: The agent's logger.
    /// - Returns: A ``ProcessRuntime`` or a ``DockerRuntime``.
    public func makeRuntime(
        scope: String, workspace: String? = nil, useCgroups: Bool, cgroupScope: String? = nil, logger: Logger
    ) -> any TaskRuntime {
        switch kind {
        case .process:
            let cgroups = useCgroups ? CgroupController.detect(scope: cgroupScope ?? scope) : nil
            return ProcessRuntime(cgroups: cgroups, scope: scope, workspace: workspace, runAs: runAs, logger: logger)
        case .docker:
            return DockerRuntime(
                client: DockerClient(socketPath: dockerSocket), scope: scope, options: self, logger: logger)
        }
    }
}
