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
                ServerLink.Dispatch(
                    start: StartTask(
                        taskID: row.taskID, attempt: row.attempt, spec: spec, backend: configuration.backendID),
                    requestID: requestID))
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
            tasks: snapshot.tasks, servers: snapshot.servers, eligible: Set(links.keys))
        for placement in placements {
            guard let link = links[placement.serverID] else { continue }
            let stream = StreamName.task(placement.taskID)
            let version = try await log.store.version(of: stream)
            guard let spec = try await spec(of: placement.taskID) else { continue }
            let requestID = RequestID.make()
            do {
                try await log.append(
                    .taskDispatched(
                        TaskDispatched(
                            taskID: placement.taskID, attempt: placement.attempt, serverID: placement.serverID,
                            requestID: requestID)),
                    expectedVersion: .exact(version),
                    metadata: EventMetadata(actor: "backend", correlationID: requestID.rawValue))
            } catch {
                guard error.code == .wrongExpectedVersion else { throw error }
                continue  // the task changed meanwhile (e.g. cancelled); the next pass sees it
            }
            logger.info(
                "task dispatched",
                metadata: ["task.id": "\(placement.taskID)", "server": "\(placement.serverID)"])
            link.enqueue(
                ServerLink.Dispatch(
                    start: StartTask(
                        taskID: placement.taskID, attempt: placement.attempt, spec: spec,
                        backend: configuration.backendID),
                    requestID: requestID))
        }
    }
}
