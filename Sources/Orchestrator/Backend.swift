import Domain
import EventStore
import Foundation
import Logging
import Projections
import ServiceLifecycle
import Transport
import Wire

/// `touchstone serve`: reads operator intents from the log, schedules queued tasks within each server's `maxTasks`,
/// dispatches them over the channels, and records every request, response and task transition.
public struct Backend: Service {
    let log: TouchstoneLog
    let queues: any QueueProvider
    let configuration: BackendConfiguration
    let logger: Logger

    /// - Parameters:
    ///   - log: The event log with its read models.
    ///   - queues: Where the channels' queues are (the embedded store or SQS); the backend creates any that are
    ///     missing.
    ///   - configuration: Intervals and timeouts.
    ///   - logger: The backend's logger.
    public init(log: TouchstoneLog, queues: any QueueProvider, configuration: BackendConfiguration, logger: Logger) {
        self.log = log
        self.queues = queues
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                var links: [ServerID: ServerLink] = [:]
                var stopping: Set<TaskAttempt> = []
                var resent = false
                while !Task.isCancelled {
                    do {
                        let snapshot = try await log.snapshot()
                        for row in snapshot.servers.rows.values.sorted(by: { $0.serverID < $1.serverID })
                        where links[row.serverID] == nil {
                            let link = try await makeLink(row, channels: snapshot.channels)
                            links[row.serverID] = link
                            group.addTask { await link.run() }
                            logger.info("server linked", metadata: ["server": "\(row.serverID)"])
                        }
                        if !resent {
                            // Starts booked before a restart and never confirmed are sent again with the same
                            // request ID: the agent answers a known request from its journal, never twice.
                            try await resendUnconfirmed(snapshot, links: links)
                            resent = true
                        }
                        try await enforceLifecycle(snapshot, links: links, stopping: &stopping)
                        try await schedule(snapshot, links: links)
                    } catch is CancellationError {
                        break
                    } catch {
                        // A failed pass (log or queue error) is retried on the next tick.
                        if Task.isCancelled { break }
                        logger.error("scheduling pass failed", metadata: ["error": "\(error)"])
                    }
                    // Cancellation (graceful shutdown) ends the loop; it is not an error.
                    try? await Task.sleep(for: configuration.schedulingInterval)
                }
            }
        }
    }

    private func makeLink(_ row: ServerRow, channels: ChannelSync) async throws -> ServerLink {
        var clients: [ChannelClient] = []
        for index in 0..<row.channels {
            let id = ChannelID(server: row.serverID, index: index)
            let requestName = ChannelQueues.requestQueue(prefix: configuration.queuePrefix, channel: id)
            let responseName = ChannelQueues.responseQueue(prefix: configuration.queuePrefix, channel: id)
            try await queues.createQueueIfNeeded(named: requestName, attributes: QueueAttributes())
            try await queues.createQueueIfNeeded(named: responseName, attributes: QueueAttributes())
            clients.append(
                ChannelClient(
                    channel: id, requests: try await queues.openQueue(named: requestName),
                    responses: try await queues.openQueue(named: responseName), log: log, state: channels[id],
                    configuration: configuration, logger: logger))
        }
        return ServerLink(serverID: row.serverID, clients: clients, log: log, configuration: configuration, logger: logger)
    }

    private func resendUnconfirmed(_ snapshot: ProjectionSet, links: [ServerID: ServerLink]) async throws {
        for row in snapshot.tasks.rows.values where row.status == .dispatching || row.status == .starting {
            guard let server = row.serverID, let link = links[server], let requestID = row.requestID,
                let spec = try await spec(of: row.taskID)
            else { continue }
            logger.info("resending an unconfirmed start", metadata: ["task.id": "\(row.taskID)"])
            link.enqueue(
                .start(
                    StartTask(
                        taskID: row.taskID, attempt: row.attempt, spec: spec, backend: configuration.backendID,
                        gpuIndices: row.gpuIndices),
                    requestID))
        }
    }

    private func spec(of task: TaskID) async throws -> TaskSpec? {
        guard let first = try await log.store.read(stream: StreamName.task(task)).first,
            case .taskSubmitted(let submitted) = try ReadModels.decode(first).event
        else { return nil }
        return submitted.spec
    }

    private func schedule(_ snapshot: ProjectionSet, links: [ServerID: ServerLink]) async throws {
        let placements = Scheduler.plan(
            tasks: snapshot.tasks, servers: snapshot.servers, eligible: Set(links.keys), packing: configuration.packing)
        for placement in placements {
            guard let link = links[placement.serverID] else { continue }
            guard let version = snapshot.tasks[placement.taskID]?.streamVersion, let spec = try await spec(of: placement.taskID) else { continue }
            let requestID = RequestID.make()
            do {
                // The booking expects the server stream's version the plan saw: a drain, detach or capacity change
                // appended meanwhile makes it fail, and the next pass plans again with the new limit.
                try await log.append(
                    [
                        .init(
                            .taskDispatched(
                                TaskDispatched(
                                    taskID: placement.taskID, attempt: placement.attempt, serverID: placement.serverID,
                                    requestID: requestID, gpuIndices: placement.gpuIndices.isEmpty ? nil : placement.gpuIndices)),
                            expectedVersion: .exact(version),
                            metadata: EventMetadata(actor: "backend", correlationID: requestID.rawValue))
                    ],
                    conditions: [StreamName.server(placement.serverID): placement.serverVersion])
            } catch {
                guard error.code == .wrongExpectedVersion else { throw error }
                return  // the server or task changed since the plan: plan again next pass
            }
            logger.info(
                "task dispatched",
                metadata: ["task.id": "\(placement.taskID)", "server": "\(placement.serverID)"])
            link.enqueue(
                .start(
                    StartTask(
                        taskID: placement.taskID, attempt: placement.attempt, spec: spec,
                        backend: configuration.backendID, gpuIndices: placement.gpuIndices),
                    requestID))
        }
    }

    /// Drain deadlines, detaches, lost servers and cancels: the lifecycle work of one pass.
    private func enforceLifecycle(_ snapshot: ProjectionSet, links: [ServerID: ServerLink], stopping: inout Set<TaskAttempt>) async throws {
        let now = Date()
        // A cancel of a placed task (requested while the backend ran or while it was down): stop the attempt. Its
        // `stopped` report ends the task `cancelled`; a start the agent never had is withdrawn, which the fold turns
        // into `cancelled` too.
        for row in snapshot.tasks.rows.values
        where row.cancelRequestedAt != nil && (row.status == .starting || row.status == .running) {
            let attempt = TaskAttempt(taskID: row.taskID, attempt: row.attempt)
            guard let server = row.serverID, let link = links[server], !stopping.contains(attempt) else { continue }
            stopping.insert(attempt)
            logger.info("cancel requested: stopping", metadata: ["task.id": "\(row.taskID)", "server": "\(server)"])
            link.enqueue(.stop(attempt, graceSeconds: configuration.stopGraceSeconds))
        }
        for row in snapshot.servers.rows.values {
            if let deadline = row.drain?.deadline, deadline <= now, row.maxTasks == 0, let link = links[row.serverID] {
                for attempt in row.running where !stopping.contains(attempt) {
                    stopping.insert(attempt)
                    logger.info("drain deadline passed: stopping", metadata: ["task.id": "\(attempt.taskID)", "server": "\(row.serverID)"])
                    link.enqueue(.stop(attempt, graceSeconds: configuration.stopGraceSeconds))
                }
            }
            if row.detachRequested != nil, row.booked.isEmpty, !row.detached {
                do {
                    try await log.append(
                        [.init(.serverDetached(ServerDetached(serverID: row.serverID)), expectedVersion: .exact(row.streamVersion), metadata: EventMetadata(actor: "backend"))])
                    logger.info("server detached", metadata: ["server": "\(row.serverID)"])
                } catch {
                    guard error.code == .wrongExpectedVersion else { throw error }
                }
            }
            if let since = row.unreachableSince, !row.reachable,
                now.timeIntervalSince(since) >= Double(configuration.lostAfter.components.seconds)
            {
                for attempt in row.booked {
                    guard let task = snapshot.tasks[attempt.taskID], task.attempt == attempt.attempt else { continue }
                    let events = Reconciler.lost(
                        task, reason: "\(row.serverID) unreachable for longer than \(configuration.lostAfter)",
                        maxAttempts: configuration.maxAttempts)
                    let version = task.streamVersion
                    do {
                        try await log.append(events.map { .init($0, expectedVersion: .exact(version), metadata: EventMetadata(actor: "backend")) })
                    } catch {
                        guard error.code == .wrongExpectedVersion else { throw error }
                    }
                }
            }
        }
    }
}
