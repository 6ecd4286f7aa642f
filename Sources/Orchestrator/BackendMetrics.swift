import Domain
import FileSignals
import EventStore
import Foundation
import Logging
import Metrics
import Projections
import ServiceLifecycle
import Synchronization
import Wire

/// The backend's figures, through swift-metrics (issue 15); the `serve` executable bootstraps a Prometheus factory
/// and serves them at `--metrics-listen` (docs/operations.md lists every series). Without a bootstrap every call
/// is a no-op.
///
/// Three sources: counters and histograms recorded as the log grows (``LogMetrics``), gauges read from the read
/// models when scraped (``recordSnapshot(_:)``), and each agent's own figures from its heartbeat replies
/// (``recordAgent(_:_:)``).
public enum BackendMetrics {
    /// Metric names, one place.
    public enum Name {
        public static let tasks = "touchstone_tasks"
        public static let queueDepth = "touchstone_queue_depth"
        public static let submitToStart = "touchstone_task_submit_to_start_seconds"
        public static let taskDuration = "touchstone_task_duration_seconds"
        public static let roundTrip = "touchstone_request_round_trip_seconds"
        public static let transportFailures = "touchstone_transport_failures_total"
        public static let desyncs = "touchstone_desyncs_total"
        public static let drains = "touchstone_queue_drains_total"
        public static let serverBooked = "touchstone_server_booked_tasks"
        public static let serverMaxTasks = "touchstone_server_max_tasks"
        public static let serverGPUs = "touchstone_server_gpus"
        public static let serverGPUsInUse = "touchstone_server_gpus_in_use"
        public static let serverGPUsForeign = "touchstone_server_gpus_foreign"
        public static let serverReachable = "touchstone_server_reachable"
        public static let agentResident = "touchstone_agent_resident_bytes"
        public static let agentTasks = "touchstone_agent_tasks"
        public static let agentRuntimeErrors = "touchstone_agent_runtime_errors"
    }

    /// The priorities given a queue-depth gauge so far: one that empties is set to 0, not left at its last depth.
    private static let priorities = Mutex<Set<Int>>([])

    /// Sets the gauges read from the log's read models: tasks by status, queue depth by priority, and per server its
    /// booked and maximum tasks, GPUs, GPUs in use (booked), GPUs held by foreign processes and reachability.
    public static func recordSnapshot(_ snapshot: Snapshot) {
        for status in TaskStatus.allCases {
            Gauge(label: Name.tasks, dimensions: [("state", status.rawValue)])
                .record(snapshot.tasksByStatus[status] ?? 0)
        }
        let seen = priorities.withLock { seen in
            seen.formUnion(snapshot.queuedByPriority.keys)
            seen.insert(0)  // the default priority always has a depth, 0 included
            return seen
        }
        for priority in seen.sorted() {
            Gauge(label: Name.queueDepth, dimensions: [("priority", String(priority))])
                .record(snapshot.queuedByPriority[priority] ?? 0)
        }
        for row in snapshot.servers where !row.detached {
            let server = [("server", row.serverID.rawValue)]
            Gauge(label: Name.serverBooked, dimensions: server).record(row.booked.count)
            Gauge(label: Name.serverMaxTasks, dimensions: server).record(row.maxTasks)
            Gauge(label: Name.serverGPUs, dimensions: server).record(row.gpus.count)
            Gauge(label: Name.serverGPUsInUse, dimensions: server).record(Set(row.gpuBookings.map(\.index)).count)
            Gauge(label: Name.serverGPUsForeign, dimensions: server).record(row.foreignBusyGPUs.count)
            Gauge(label: Name.serverReachable, dimensions: server).record(row.reachable ? 1 : 0)
        }
    }

    /// Exports one agent's figures from a heartbeat reply, labelled by its server.
    public static func recordAgent(_ server: ServerID, _ figures: AgentFigures) {
        let label = ("server", server.rawValue)
        if let resident = figures.residentBytes {
            Gauge(label: Name.agentResident, dimensions: [label]).record(resident)
        }
        for state in ["running", "exited", "stopped", "failedToStart"] {
            Gauge(label: Name.agentTasks, dimensions: [label, ("state", state)]).record(figures.tasksByState[state] ?? 0)
        }
        Gauge(label: Name.agentRuntimeErrors, dimensions: [label]).record(figures.runtimeErrors)
    }

    /// Records a request's round trip, from its first send to its answer, by command.
    static func recordRoundTrip(command: String, since start: ContinuousClock.Instant) {
        Metrics.Timer(label: Name.roundTrip, dimensions: [("command", command)])
            .recordNanoseconds((ContinuousClock.now - start).wholeNanoseconds)
    }

    /// What the scrape-time gauges show, read from the log.
    public struct Snapshot: Sendable, Equatable {
        public var tasksByStatus: [TaskStatus: Int]
        public var queuedByPriority: [Int: Int]
        public var servers: [ServerRow]

        public init(tasksByStatus: [TaskStatus: Int], queuedByPriority: [Int: Int], servers: [ServerRow]) {
            self.tasksByStatus = tasksByStatus
            self.queuedByPriority = queuedByPriority
            self.servers = servers
        }

        /// Counts a task board's rows by status, and its queued rows by priority. Pure.
        public init(board: TaskBoard, servers: [ServerRow]) {
            var byStatus: [TaskStatus: Int] = [:]
            var byPriority: [Int: Int] = [:]
            for row in board.rows.values {
                byStatus[row.status, default: 0] += 1
                if row.status == .queued { byPriority[row.priority, default: 0] += 1 }
            }
            self.init(tasksByStatus: byStatus, queuedByPriority: byPriority, servers: servers)
        }

        /// Reads the task board and the server rows.
        ///
        /// - Throws: ``EventStoreError`` `.storage`.
        public static func read(_ log: TouchstoneLog) async throws -> Snapshot {
            Snapshot(board: try await log.readModel(TaskBoard.self), servers: try await log.serverRows())
        }
    }
}

/// Records counters and histograms from the events the log gains while the backend runs: submit-to-start latency
/// and task duration (from `task.started` / `task.finished` and the task's row), desyncs, queue drains and
/// transport failures. Reading them from the log counts every writer's events once, whichever code path appended
/// them.
public struct LogMetrics: Service {
    let log: TouchstoneLog
    let logger: Logger

    public init(log: TouchstoneLog, logger: Logger) {
        self.log = log
        self.logger = logger
    }

    /// What one event adds to the figures. Pure.
    public enum Observation: Sendable, Equatable {
        case submitToStart(seconds: Double)
        case taskDuration(seconds: Double, outcome: String)
        case desync(server: String, reason: String)
        case drain(server: String)
        case transportFailure(operation: String)
    }

    /// The observations of one event, given the task row it concerns (for its submit and start times). Pure.
    public static func observations(_ event: RecordedEvent<DomainEvent>, task row: TaskRow?) -> [Observation] {
        switch event.event {
        case .taskStarted(let started):
            guard let row else { return [] }
            return [.submitToStart(seconds: max(0, started.startedAt.timeIntervalSince(row.submittedAt)))]
        case .taskFinished(let finished):
            guard let started = row?.startedAt else { return [] }
            return [
                .taskDuration(
                    seconds: max(0, event.recordedAt.timeIntervalSince(started)), outcome: finished.outcome.rawValue)
            ]
        case .channelDesyncDetected(let desync):
            return [.desync(server: desync.channel.server.rawValue, reason: desync.reason)]
        case .channelQueuesDrained(let drained):
            return [.drain(server: drained.channel.server.rawValue)]
        case .transportFailed(let failure):
            return [.transportFailure(operation: failure.operation)]
        default:
            return []
        }
    }

    /// Hands one observation to swift-metrics.
    public static func record(_ observation: Observation) {
        switch observation {
        case .submitToStart(let seconds):
            Metrics.Timer(label: BackendMetrics.Name.submitToStart).recordNanoseconds(Int64(seconds * 1e9))
        case .taskDuration(let seconds, let outcome):
            Metrics.Timer(label: BackendMetrics.Name.taskDuration, dimensions: [("outcome", outcome)])
                .recordNanoseconds(Int64(seconds * 1e9))
        case .desync(let server, _):
            Counter(label: BackendMetrics.Name.desyncs, dimensions: [("server", server)]).increment()
        case .drain(let server):
            Counter(label: BackendMetrics.Name.drains, dimensions: [("server", server)]).increment()
        case .transportFailure(let operation):
            Counter(label: BackendMetrics.Name.transportFailures, dimensions: [("operation", operation)]).increment()
        }
    }

    /// Follows the log from its current end until cancelled.
    public func run() async throws {
        let start = try await log.store.lastPosition()
        try await cancelWhenGracefulShutdown {
            var position = start
            while !Task.isCancelled {
                do {
                    let events = try await log.events(after: position, limit: 500)
                    for event in events {
                        let taskID: TaskID? =
                            switch event.event {
                            case .taskStarted(let started): started.taskID
                            case .taskFinished(let finished): finished.taskID
                            default: nil
                            }
                        let row = try await taskID.asyncMap { try await log.task($0) } ?? nil
                        for observation in Self.observations(event, task: row) { Self.record(observation) }
                        position = event.position
                    }
                    if events.isEmpty { _ = try await log.store.waitForAppend(after: position, timeout: .seconds(60)) }
                } catch is CancellationError {
                    return
                } catch {
                    if Task.isCancelled { return }
                    logger.warning("metrics: reading the log failed", metadata: ["error": "\(error)"])
                    try await Task.sleep(for: .seconds(1))
                }
            }
        }
    }
}

extension Optional {
    fileprivate func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
