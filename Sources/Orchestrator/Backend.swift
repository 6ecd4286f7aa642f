import Domain
import EventStore
import Foundation
import Logging
import Projections
import ServiceLifecycle
import Synchronization
import Transport
import Wire

/// `touchstone serve`: reads operator intents from the log, schedules queued tasks within each server's `maxTasks`,
/// dispatches them over the channels, and records every request, response and task transition.
public struct Backend: Service {
    let log: TouchstoneLog
    let queues: any QueueProvider
    let configuration: BackendConfiguration
    let logger: Logger
    /// Servers held back after refusing a start (shared with the server links).
    let holds = PlacementHolds()
    /// When this process first saw each server unreachable, on the monotonic clock (``lostAfter`` is measured from
    /// it, so a wall-clock jump never declares tasks lost).
    let unreachable = UnreachableClock()
    /// The running link of each linked server, so that a detach can stop polling it.
    let linkTasks = LinkTasks()

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
                    var nextDue: Duration?
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
                    let wait = nextDue.map { max(.milliseconds(1), $0 + .milliseconds(1)) }
                    let waitedFrom = configuration.clock.instant()
                    _ = try? await log.store.waitForAppend(
                        after: position, timeout: min(wait ?? .seconds(3600), .seconds(3600)))
                    if let wait, configuration.clock.instant() - waitedFrom >= wait { seen = -1 }
                }
            }
        }
    }

    /// One scheduling pass over the rows it needs: server rows, the live tasks they book, and the head of the queue.
    ///
    /// - Returns: How long until the next time-based rule falls due (a drain deadline, a server's `lostAfter`, the
    ///   end of a refusal's hold), if any.
    private func pass(
        links: inout [ServerID: ServerLink], group: inout ThrowingDiscardingTaskGroup<any Error>,
        stopping: inout Set<TaskAttempt>, resent: inout Bool
    ) async throws -> Duration? {
        let servers = try await log.serverRows()
        for row in servers.sorted(by: { $0.serverID < $1.serverID }) {
            switch Self.linkAction(row, linked: links[row.serverID] != nil) {
            case .none:
                break
            case .link:
                let link = try await makeLink(row)
                links[row.serverID] = link
                let running = Task { await link.run() }
                linkTasks.tasks.withLock { $0[row.serverID] = running }
                group.addTask {
                    await withTaskCancellationHandler { await running.value } onCancel: { running.cancel() }
                }
                logger.info("server linked", metadata: ["server": "\(row.serverID)"])
            case .unlink:
                // A detached server is no longer polled: nothing of ours runs there, and its agent may be gone for
                // good. Attaching it again links it anew.
                links[row.serverID] = nil
                linkTasks.tasks.withLock { $0.removeValue(forKey: row.serverID) }?.cancel()
                logger.info("server unlinked: detached", metadata: ["server": "\(row.serverID)"])
            }
        }
        if !resent {
            // Starts booked before a restart and never confirmed are sent again with the same request ID: the agent
            // answers a known request from its journal, never twice.
            try await resendUnconfirmed(servers, links: links)
            resent = true
        }
        try await enforceLifecycle(servers, links: links, stopping: &stopping)
        try await schedule(servers, links: links)
        return nextTimedRule(servers)
    }

    /// The running link task of each linked server.
    final class LinkTasks: Sendable {
        let tasks = Mutex<[ServerID: Task<Void, Never>]>([:])
    }

    /// What a pass does with a server's link.
    enum LinkAction: Equatable { case none, link, unlink }

    /// Linked while attached (in any state but detached); a detached server is unlinked, and linked again when it
    /// is attached again. Pure.
    static func linkAction(_ row: ServerRow, linked: Bool) -> LinkAction {
        switch (row.detached, linked) {
        case (false, false): return .link
        case (true, true): return .unlink
        default: return .none
        }
    }

    /// The time-based rules' next due time, read from the server rows alone.
    private func nextTimedRule() async throws -> Duration? {
        nextTimedRule(try await log.serverRows())
    }

    private func nextTimedRule(_ servers: [ServerRow]) -> Duration? {
        let now = configuration.clock.instant()
        let due = Self.nextDue(
            servers, lostAfter: configuration.lostAfter, now: configuration.clock.now(),
            unreachableFor: unreachable.elapsed(servers, now: now))
        return [due, holds.nextRelease(after: now)].compactMap { $0 }.min()
    }

    /// How long until the next time-based rule falls due: the earliest drain deadline not yet passed of a server that
    /// still runs tasks (an operator's wall-clock time), or the earliest moment an unreachable server has been so for
    /// `lostAfter` (measured on the monotonic clock: `unreachableFor`). Pure.
    ///
    /// - Parameter unreachableFor: How long each unreachable server has been so, on the monotonic clock.
    static func nextDue(
        _ servers: [ServerRow], lostAfter: Duration, now: Date, unreachableFor: [ServerID: Duration]
    ) -> Duration? {
        var due: [Duration] = []
        for row in servers {
            if let deadline = row.drain?.deadline, !row.running.isEmpty || !row.booked.isEmpty, deadline > now {
                due.append(.milliseconds(Int64((deadline.timeIntervalSince(now) * 1000).rounded(.up))))
            }
            if let elapsed = unreachableFor[row.serverID], !row.reachable, !row.booked.isEmpty, elapsed < lostAfter {
                due.append(lostAfter - elapsed)
            }
        }
        return due.min()
    }

    private func makeLink(_ row: ServerRow) async throws -> ServerLink {
        let channels = try await log.channelRows(of: row)
        let skew = ClockSkewEstimate(row.clockSkewMilliseconds, clock: configuration.clock)
        var clients: [ChannelClient] = []
        let address = AgentAddress(
            known: row.agentInstance, reachable: row.reachable, lostAfter: configuration.lostAfter)
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
                    configuration: configuration, logger: logger, address: address, skew: skew))
        }
        return ServerLink(
            serverID: row.serverID, clients: clients, log: log, configuration: configuration, logger: logger,
            holds: holds, skew: skew)
    }

    private func resendUnconfirmed(_ servers: [ServerRow], links: [ServerID: ServerLink]) async throws {
        for server in servers {
            for row in try await log.liveTasks(on: server.serverID)
            where row.status == .dispatching || row.status == .starting {
                guard let serverID = row.serverID, let link = links[serverID], let requestID = row.requestID,
                    let spec = try await spec(of: row.taskID)
                else { continue }
                logger.info("resending an unconfirmed start", metadata: ["task.id": "\(row.taskID)"])
                // The agent answers a start it had from its journal; the capacity is for one it never had.
                link.enqueue(
                    .start(
                        StartTask(
                            taskID: row.taskID, attempt: row.attempt, spec: spec, backend: configuration.backendID,
                            gpuIndices: row.gpuIndices, capacity: Self.capacityView(server, adding: row.gpuIndices)),
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

    /// The capacity a start carries (issue 17 part 1): the server's `max_tasks`, every GPU booked there with the
    /// start's own, and the server stream version decided on. Pure.
    static func capacityView(_ server: ServerRow, adding gpus: [Int], version: Int64? = nil) -> CapacityView {
        CapacityView(
            maxTasks: server.maxTasks, bookedGPUs: Array(Set(server.gpuBookings.map(\.index) + gpus)).sorted(),
            serverVersion: version ?? server.streamVersion)
    }

    /// The servers a pass may place on: linked, heard from at least once (a start sent to a server whose agent never
    /// answered would only wait out its deadline in `dispatching`), not held back after a refused start, and healthy
    /// (a server whose clock is off gets no new tasks; its running ones are left alone). Pure.
    static func eligible(_ servers: [ServerRow], linked: Set<ServerID>, held: Set<ServerID>) -> Set<ServerID> {
        Set(
            servers.filter {
                linked.contains($0.serverID) && $0.lastContact != nil && !held.contains($0.serverID) && $0.unhealthy == nil
            }.map(\.serverID))
    }

    private func schedule(_ servers: [ServerRow], links: [ServerID: ServerLink]) async throws {
        let eligible = Self.eligible(
            servers, linked: Set(links.keys), held: holds.held(at: configuration.clock.instant()))
        let (placements, queue) = try await Self.decide(
            log: log, servers: servers, eligible: eligible, packing: configuration.packing)
        let rows = Dictionary(uniqueKeysWithValues: servers.map { ($0.serverID, $0) })
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
                        backend: configuration.backendID, gpuIndices: placement.gpuIndices,
                        capacity: rows[placement.serverID].map {
                            Self.capacityView($0, adding: placement.gpuIndices, version: placement.serverVersion)
                        }),
                    requestID))
        }
    }

    /// Drain deadlines, detaches, lost servers and cancels: the lifecycle work of one pass.
    private func enforceLifecycle(_ servers: [ServerRow], links: [ServerID: ServerLink], stopping: inout Set<TaskAttempt>) async throws {
        let now = configuration.clock.now()
        let unreachableFor = unreachable.elapsed(servers, now: configuration.clock.instant())
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
            if let elapsed = unreachableFor[row.serverID], !row.reachable, elapsed >= configuration.lostAfter {
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

/// When this backend process first saw each server unreachable, on the monotonic clock. A server unreachable in the
/// log when the process starts counts from the first pass that sees it, so `lostAfter` is never shortened by a
/// restart or by a jump of the wall clock (issue 17 part 3).
final class UnreachableClock: Sendable {
    private let since = Mutex<[ServerID: ContinuousClock.Instant]>([:])

    /// How long each unreachable server of `servers` has been so; forgets those reachable again.
    func elapsed(_ servers: [ServerRow], now: ContinuousClock.Instant) -> [ServerID: Duration] {
        since.withLock { since in
            var elapsed: [ServerID: Duration] = [:]
            for row in servers {
                guard !row.reachable else {
                    since[row.serverID] = nil
                    continue
                }
                let from = since[row.serverID] ?? now
                since[row.serverID] = from
                elapsed[row.serverID] = now - from
            }
            return elapsed
        }
    }
}
