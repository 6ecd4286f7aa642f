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

    /// Runs until cancelled (graceful shutdown). Each pass links new servers, enforces lifecycle deadlines and
    /// cancels, and places queued tasks; a pass runs when the log changes (this process's appends, or another
    /// process's such as the CLI's, seen through the database file within milliseconds) or when the next time-based
    /// rule is due (a drain deadline, a server unreachable for ``BackendConfiguration/lostAfter``). No tick.
    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                var links: [ServerID: ServerLink] = [:]
                var stopping: Set<TaskAttempt> = []
                var resent = false
                var seen: Int64 = -1
                var backoff = Duration.milliseconds(100)
                while !Task.isCancelled {
                    var nextDue: Date?
                    var position = seen
                    do {
                        position = try await log.store.lastPosition()
                        if position != seen {
                            nextDue = try await pass(
                                links: &links, group: &group, stopping: &stopping, resent: &resent)
                            seen = position
                            backoff = .milliseconds(100)
                        } else {
                            nextDue = try await nextTimedRule()
                        }
                    } catch is CancellationError {
                        break
                    } catch {
                        // A failed pass (log or queue error) is retried after a pause that grows while it fails.
                        if Task.isCancelled { break }
                        logger.error("scheduling pass failed", metadata: ["error": "\(error)"])
                        seen = -1
                        try? await Task.sleep(for: backoff)
                        backoff = min(backoff * 2, .seconds(5))
                        continue
                    }
                    // Woken at once by this process's appends (the pass's own included: the next pass finds nothing
                    // to do and appends nothing) and within milliseconds by another process's.
                    let wait = nextDue.map { Duration.milliseconds(max(1, Int64($0.timeIntervalSinceNow * 1000) + 1)) }
                    _ = try? await log.store.waitForAppend(
                        after: position, timeout: min(wait ?? .seconds(3600), .seconds(3600)))
                    if let nextDue, nextDue <= Date() { seen = -1 }
                }
            }
        }
    }

    /// One scheduling pass over the rows it needs: server rows, the live tasks they book, and the head of the queue.
    ///
    /// - Returns: When the next time-based rule falls due (a drain deadline, or a server's `lostAfter`), if any.
    private func pass(
        links: inout [ServerID: ServerLink], group: inout ThrowingDiscardingTaskGroup<any Error>,
        stopping: inout Set<TaskAttempt>, resent: inout Bool
    ) async throws -> Date? {
        let servers = try await log.serverRows()
        for row in servers.sorted(by: { $0.serverID < $1.serverID }) where links[row.serverID] == nil {
            let link = try await makeLink(row)
            links[row.serverID] = link
            group.addTask { await link.run() }
            logger.info("server linked", metadata: ["server": "\(row.serverID)"])
        }
        if !resent {
            // Starts booked before a restart and never confirmed are sent again with the same request ID: the agent
            // answers a known request from its journal, never twice.
            try await resendUnconfirmed(servers, links: links)
            resent = true
        }
        try await enforceLifecycle(servers, links: links, stopping: &stopping)
        try await schedule(servers, links: links)
        return Self.nextDue(servers, lostAfter: configuration.lostAfter)
    }

    /// The time-based rules' next due time, read from the server rows alone.
    private func nextTimedRule() async throws -> Date? {
        Self.nextDue(try await log.serverRows(), lostAfter: configuration.lostAfter)
    }

    /// When the next time-based rule falls due: the earliest drain deadline not yet passed of a server that still
    /// runs tasks, or the earliest moment an unreachable server has been so for `lostAfter`. Pure.
    static func nextDue(_ servers: [ServerRow], lostAfter: Duration, now: Date = Date()) -> Date? {
        var due: [Date] = []
        for row in servers {
            if let deadline = row.drain?.deadline, !row.running.isEmpty || !row.booked.isEmpty, deadline > now {
                due.append(deadline)
            }
            if let since = row.unreachableSince, !row.reachable, !row.booked.isEmpty {
                let at = since.addingTimeInterval(lostAfter.seconds)
                if at > now { due.append(at) }
            }
        }
        return due.min()
    }

    private func makeLink(_ row: ServerRow) async throws -> ServerLink {
        let channels = try await log.channelRows(of: row)
        var clients: [ChannelClient] = []
        let address = AgentAddress(known: row.agentInstance, reachable: row.reachable)
        for index in 0..<row.channels {
            let id = ChannelID(server: row.serverID, index: index)
            let requestName = ChannelQueues.requestQueue(prefix: configuration.queuePrefix, channel: id)
            let responseName = ChannelQueues.responseQueue(prefix: configuration.queuePrefix, channel: id)
            try await queues.createQueueIfNeeded(named: requestName, attributes: QueueAttributes())
            try await queues.createQueueIfNeeded(named: responseName, attributes: QueueAttributes())
            clients.append(
                ChannelClient(
                    channel: id, requests: try await queues.openQueue(named: requestName),
                    responses: try await queues.openQueue(named: responseName), log: log, state: channels[id.description],
                    configuration: configuration, logger: logger, address: address))
        }
        return ServerLink(serverID: row.serverID, clients: clients, log: log, configuration: configuration, logger: logger)
    }

    private func resendUnconfirmed(_ servers: [ServerRow], links: [ServerID: ServerLink]) async throws {
        for server in servers {
            for row in try await log.liveTasks(on: server.serverID)
            where row.status == .dispatching || row.status == .starting {
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
    }

    private func spec(of task: TaskID) async throws -> TaskSpec? {
        guard let first = try await log.store.read(stream: StreamName.task(task)).first,
            case .taskSubmitted(let submitted) = try ReadModels.decode(first).event
        else { return nil }
        return submitted.spec
    }

    /// One scheduling decision as a pass makes it: the head of the queue (only as many queued tasks as there are free
    /// slots can be placed; a few more let small tasks backfill behind one that fits nowhere), read from the indexed
    /// `task_queue`, placed on `servers` by ``Scheduler/plan(queue:servers:eligible:packing:)``. Its cost grows with
    /// the free slots, never with the history (issue 11, row 9).
    ///
    /// - Returns: The placements and the queued rows they were decided on.
    public static func decide(
        log: TouchstoneLog, servers: [ServerRow], eligible: Set<ServerID>, packing: PackingPolicy
    ) async throws -> (placements: [Scheduler.Placement], queue: [TaskRow]) {
        let free = servers.filter { eligible.contains($0.serverID) }.reduce(0) { $0 + $1.freeSlots }
        guard free > 0 else { return ([], []) }
        let queue = try await log.queuedTasks(limit: free * 4 + 64)
        return (Scheduler.plan(queue: queue, servers: servers, eligible: eligible, packing: packing), queue)
    }

    private func schedule(_ servers: [ServerRow], links: [ServerID: ServerLink]) async throws {
        let (placements, queue) = try await Self.decide(
            log: log, servers: servers, eligible: Set(links.keys), packing: configuration.packing)
        let versions = Dictionary(uniqueKeysWithValues: queue.map { ($0.taskID, $0.streamVersion) })
        for placement in placements {
            guard let link = links[placement.serverID] else { continue }
            guard let version = versions[placement.taskID], let spec = try await spec(of: placement.taskID) else { continue }
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
                return  // the server or task changed since the plan: the append woke the next pass, which plans again
            }
            logger.debug(
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
    private func enforceLifecycle(_ servers: [ServerRow], links: [ServerID: ServerLink], stopping: inout Set<TaskAttempt>) async throws {
        let now = Date()
        var live: [TaskID: TaskRow] = [:]
        for server in servers where !server.booked.isEmpty {
            for row in try await log.liveTasks(on: server.serverID) { live[row.taskID] = row }
        }
        // Attempts no longer live are forgotten, so the set stays as small as what runs.
        stopping = stopping.filter { live[$0.taskID]?.attempt == $0.attempt }
        // A cancel of a placed task (requested while the backend ran or while it was down): stop the attempt. Its
        // `stopped` report ends the task `cancelled`; a start the agent never had is withdrawn, which the fold turns
        // into `cancelled` too.
        for row in live.values.sorted(by: { $0.taskID < $1.taskID })
        where row.cancelRequestedAt != nil && (row.status == .starting || row.status == .running) {
            let attempt = TaskAttempt(taskID: row.taskID, attempt: row.attempt)
            guard let server = row.serverID, let link = links[server], !stopping.contains(attempt) else { continue }
            stopping.insert(attempt)
            logger.info("cancel requested: stopping", metadata: ["task.id": "\(row.taskID)", "server": "\(server)"])
            link.enqueue(.stop(attempt, graceSeconds: configuration.stopGraceSeconds))
        }
        for row in servers {
            if let deadline = row.drain?.deadline, deadline <= now, row.maxTasks == 0, let link = links[row.serverID] {
                for attempt in row.running where !stopping.contains(attempt) {
                    stopping.insert(attempt)
                    logger.info("drain deadline passed: stopping", metadata: ["task.id": "\(attempt.taskID)", "server": "\(row.serverID)"])
                    link.enqueue(.stop(attempt, graceSeconds: configuration.stopGraceSeconds))
                }
            }
            let appender = CommandAppender(log: log, attempts: 1)
            if row.detachRequested != nil, row.booked.isEmpty, !row.detached {
                do {
                    try await appender.execute(.completeDetach, server: row.serverID, metadata: EventMetadata(actor: "backend"))
                    logger.info("server detached", metadata: ["server": "\(row.serverID)"])
                } catch is Rejection {
                } catch let error as EventStoreError where error.code == .wrongExpectedVersion {}
            }
            if let since = row.unreachableSince, !row.reachable,
                now.timeIntervalSince(since) >= Double(configuration.lostAfter.components.seconds)
            {
                for attempt in row.booked {
                    guard let task = live[attempt.taskID], task.attempt == attempt.attempt else { continue }
                    do {
                        try await appender.execute(
                            .lose(
                                attempt: attempt.attempt,
                                reason: "\(row.serverID) unreachable for longer than \(configuration.lostAfter)",
                                maxAttempts: configuration.maxAttempts),
                            task: task.taskID, metadata: EventMetadata(actor: "backend"))
                    } catch is Rejection {
                    } catch let error as EventStoreError where error.code == .wrongExpectedVersion {}
                }
            }
        }
    }
}
