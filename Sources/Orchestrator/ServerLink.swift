import Domain
import EventStore
import Foundation
import Logging
import Projections
import Transport
import Wire

/// The backend's connection to one server: a control loop on channel 0 (`hello`, then a `heartbeat` every
/// ``BackendConfiguration/statusInterval``, which also carries the task status reports and GPU inventory) and one
/// worker per task channel taking starts and stops from a shared queue.
struct ServerLink: Sendable {
    let serverID: ServerID
    let clients: [ChannelClient]
    let log: TouchstoneLog
    let configuration: BackendConfiguration
    let logger: Logger
    let work: AsyncStream<Work>
    let workSink: AsyncStream<Work>.Continuation
    /// Inputs to put before starts, log mirroring and output collection (ServerLink+Transfers.swift).
    let transferState = TransferState()

    /// A start or a stop to carry on a task channel.
    enum Work: Sendable {
        case start(StartTask, RequestID)
        case stop(TaskAttempt, graceSeconds: Int)
    }

    init(serverID: ServerID, clients: [ChannelClient], log: TouchstoneLog, configuration: BackendConfiguration, logger: Logger) {
        self.serverID = serverID
        self.clients = clients
        self.log = log
        self.configuration = configuration
        self.logger = logger
        (work, workSink) = AsyncStream.makeStream(of: Work.self)
    }

    /// Hands work to the next free task channel.
    func enqueue(_ item: Work) {
        if routeThroughTransfers(item) { return }
        workSink.yield(item)
    }

    /// Runs the control loop and the channel workers until cancelled.
    func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await control() }
            for client in Self.taskChannels(of: clients) {
                group.addTask { await worker(client) }
            }
            group.addTask { await transferLoop() }
            group.addTask {
                // End the workers' shared stream when the link is cancelled.
                await withTaskCancellationHandler {
                    while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
                } onCancel: {
                    workSink.finish()
                }
            }
        }
    }

    private func control() async {
        guard let control = clients.first else { return }
        var greeted = false
        var missed = 0
        var reachable = true
        while !Task.isCancelled {
            do {
                if !greeted {
                    let response = try await control.call(.hello, timeout: configuration.heartbeatTimeout)
                    if case .hello(let hello) = response.body {
                        let skew = Int64((response.agentTime.timeIntervalSinceNow) * 1000)
                        try await log.append(
                            .serverHelloReceived(
                                ServerHelloReceived(
                                    serverID: serverID, agentVersion: hello.agentVersion, agentTime: response.agentTime,
                                    clockSkewMilliseconds: skew,
                                    runningTasks: hello.tasks.filter { $0.state == .running }.map(\.key),
                                    gpuCount: hello.gpuCount, gpus: hello.gpus)),
                            metadata: EventMetadata(actor: "agent:\(serverID)", correlationID: response.requestID?.rawValue))
                        try await observe(hello.tasks, complete: true)
                        greeted = true
                    }
                } else {
                    let response = try await control.call(.heartbeat, timeout: configuration.heartbeatTimeout)
                    if case .heartbeat(let beat) = response.body {
                        try await observeGPUs(beat.gpus, problem: beat.gpuProblem)
                        try await observe(beat.tasks, complete: true)
                    }
                }
                missed = 0
                if !reachable {
                    reachable = true
                    try await recordLiveness(reachable: true, missed: 0)
                }
            } catch is CancellationError {
                return
            } catch let error as BackendError where error.code == .timeout {
                if Task.isCancelled { return }
                missed += 1
                logger.warning("heartbeat missed", metadata: ["server": "\(serverID)", "missed": "\(missed)"])
                if reachable, missed >= configuration.missedHeartbeatsForUnreachable {
                    reachable = false
                    try? await recordLiveness(reachable: false, missed: missed)
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("control channel call failed", metadata: ["server": "\(serverID)", "error": "\(error)"])
            }
            try? await Task.sleep(for: configuration.statusInterval)
        }
    }

    private func recordLiveness(reachable: Bool, missed: Int) async throws {
        try await log.append(
            .serverLivenessChanged(ServerLivenessChanged(serverID: serverID, reachable: reachable, missedHeartbeats: missed)),
            metadata: EventMetadata(actor: "backend"))
    }

    private func observeGPUs(_ gpus: [GPUDevice], problem: String?) async throws {
        let row = try await log.store.read { db in try ReadModels.row(ServerCapacity.self, key: serverID.rawValue, in: db) }
        guard let row, row.gpus != gpus || row.gpuProblem != problem else { return }
        try await log.append(
            .serverGPUsObserved(ServerGPUsObserved(serverID: serverID, gpus: gpus, problem: problem)),
            metadata: EventMetadata(actor: "agent:\(serverID)"))
    }

    private func worker(_ client: ChannelClient) async {
        for await item in work {
            do {
                switch item {
                case .start(let start, let requestID):
                    guard try await stillWanted(start) else { continue }
                    let response = try await client.call(.startTask(start), taskID: start.taskID, requestID: requestID)
                    switch response.body {
                    case .taskStarted(let report):
                        try await observe([report], complete: false)
                    case .error(let error):
                        try await observe(
                            [TaskStatusReport(taskID: start.taskID, attempt: start.attempt, state: .failedToStart, reason: "the agent refused the start: \(error)")],
                            complete: false)
                    default:
                        logger.warning("unexpected reply to startTask", metadata: ["task.id": "\(start.taskID)"])
                    }
                case .stop(let attempt, let grace):
                    let response = try await client.call(
                        .stopTask(StopTask(taskID: attempt.taskID, attempt: attempt.attempt, graceSeconds: grace)),
                        taskID: attempt.taskID)
                    if case .taskStopped(let report) = response.body { try await observe([report], complete: false) }
                }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("task channel call failed", metadata: ["server": "\(serverID)", "error": "\(error)"])
            }
        }
    }

    /// The rule for a booking that a drain or capacity cut overtook: a start not yet sent when the server stopped
    /// taking tasks is withdrawn (logged as `task.dispatch-withdrawn`, the task is queued again); a start already sent
    /// runs and counts against the server until it ends, so nothing is lost and nothing new is booked past the limit.
    func stillWanted(_ start: StartTask) async throws -> Bool {
        let (server, task) = try await log.store.read { db in
            (
                try ReadModels.row(ServerCapacity.self, key: serverID.rawValue, in: db),
                try ReadModels.row(TaskBoard.self, key: start.taskID.rawValue, in: db)
            )
        }
        guard let task, task.attempt == start.attempt, task.status == .dispatching || task.status == .starting else {
            return false
        }
        let version = task.streamVersion
        guard let server else { return false }
        let overBooked = server.booked.count > server.maxTasks
        guard server.state != .attached || overBooked || server.detachRequested != nil else { return true }
        let reason =
            "\(serverID) stopped taking tasks (\(server.state.rawValue), \(server.booked.count) booked of max "
            + "\(server.maxTasks)) before the start was sent"
        do {
            try await log.append(
                .taskDispatchWithdrawn(
                    TaskDispatchWithdrawn(taskID: start.taskID, attempt: start.attempt, serverID: serverID, reason: reason)),
                expectedVersion: .exact(version), metadata: EventMetadata(actor: "backend"))
        } catch {
            guard error.code == .wrongExpectedVersion else { throw error }
        }
        logger.info("dispatch withdrawn", metadata: ["task.id": "\(start.taskID)", "server": "\(serverID)"])
        return false
    }

    /// Appends the transitions that the agent's reports imply, each with the task stream's expected version so that
    /// two channels reporting the same end record it once.
    ///
    /// - Parameter complete: The reports are the agent's whole list: a task the log holds as running on this server
    ///   that is missing from it is lost (its process disappeared), and requeued under the retry policy.
    func observe(_ reports: [TaskStatusReport], complete: Bool) async throws {
        let (tasks, server) = try await log.store.read { db in
            (try ReadModels.load(TaskBoard.self, in: db).0, try ReadModels.row(ServerCapacity.self, key: serverID.rawValue, in: db))
        }
        let deadlinePassed = server?.drain?.deadline.map { $0 <= Date() } ?? false
        let context = Reconciler.Context(
            server: serverID, stoppedForDrain: deadlinePassed, maxAttempts: configuration.maxAttempts)
        var decisions: [(TaskID, @Sendable (TaskRow) -> [DomainEvent])] = []
        for report in reports where tasks[report.taskID] != nil {
            decisions.append((report.taskID, { row in Reconciler.transitions(for: row, report: report, context: context) }))
        }
        if complete {
            let reported = Set(reports.map(\.key))
            let maxAttempts = configuration.maxAttempts
            let reason = "the agent on \(serverID) no longer has this task's process"
            // A start the agent does not have, well past its request's expiry: the agent never executes an expired
            // request, so the attempt never ran. It is withdrawn and the task queued again.
            let expiry = Double(configuration.requestTimeout.components.seconds) * 2 + 5
            let server = serverID
            for row in tasks.rows.values
            where row.serverID == serverID && (row.status == .starting || row.status == .dispatching)
                && !reported.contains(TaskAttempt(taskID: row.taskID, attempt: row.attempt))
                && !transferState.isStaging(TaskAttempt(taskID: row.taskID, attempt: row.attempt), within: expiry)
                && (row.dispatchedAt.map { Date().timeIntervalSince($0) > expiry } ?? false)
            {
                let attempt = row.attempt
                decisions.append((row.taskID, { current in
                    guard current.attempt == attempt, current.status == .starting || current.status == .dispatching else {
                        return []
                    }
                    return [
                        .taskDispatchWithdrawn(
                            TaskDispatchWithdrawn(
                                taskID: current.taskID, attempt: attempt, serverID: server,
                                reason: "the start request expired unanswered and the agent does not have the task"))
                    ]
                }))
            }
            for row in tasks.rows.values
            where row.serverID == serverID && row.status == .running
                && !reported.contains(TaskAttempt(taskID: row.taskID, attempt: row.attempt))
            {
                let attempt = row.attempt
                decisions.append((row.taskID, { current in
                    current.status == .running && current.attempt == attempt
                        ? Reconciler.lost(current, reason: reason, maxAttempts: maxAttempts) : []
                }))
            }
        }
        for (task, decide) in decisions {
            // The row and its stream version from one snapshot, so the expected version matches what was decided on.
            guard let row = try await log.store.read({ db in try ReadModels.row(TaskBoard.self, key: task.rawValue, in: db) })
            else { continue }
            let version = row.streamVersion
            let events = decide(row)
            guard !events.isEmpty else { continue }
            let meta = EventMetadata(actor: "agent:\(serverID)", correlationID: row.requestID?.rawValue)
            do {
                try await log.append(events.map { TouchstoneLog.Append($0, expectedVersion: .exact(version), metadata: meta) })
            } catch {
                // Another channel recorded a transition meanwhile; the next report reconciles again.
                guard error.code == .wrongExpectedVersion else { throw error }
            }
        }
    }
}
