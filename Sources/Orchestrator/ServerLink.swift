import Domain
import EventStore
import FileSignals
import Foundation
import Logging
import Projections
import Transport
import Synchronization
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
    /// Starts and stops waiting for a task channel.
    let work = WorkQueue()
    /// Unrecognised attempts whose stop is under way, so one inventory after another does not stop them twice.
    let cleaning = CleanupTracker()
    /// Inputs to put before starts, log mirroring and output collection (ServerLink+Transfers.swift).
    let transferState = TransferState()
    /// Servers held back after refusing a start (shared with the backend's placement).
    let holds: PlacementHolds
    /// The server's measured clock skew (shared with its channels).
    let skew: ClockSkewEstimate
    /// When each start was last recorded as sending, on the monotonic clock (the expired-start rule).
    let sends = SendClock()

    /// A start or a stop to carry on a task channel.
    enum Work: Sendable {
        case start(StartTask, RequestID)
        case stop(TaskAttempt, graceSeconds: Int, tries: Int = 0)
    }

    /// The reports a response carries, reconciled: a whole inventory (hello, heartbeat, sync) or one task's report.
    ///
    /// - Parameter askedAt: When the request was sent, at the latest (see ``observe(_:listedAfter:)``).
    func handle(_ response: ResponseEnvelope, askedAt: Date) async throws {
        switch response.body {
        case .hello(let hello): try await observe(hello.tasks, listedAfter: askedAt)
        case .heartbeat(let beat): try await observe(beat.tasks, listedAfter: askedAt)
        case .synced(let reply): try await observe(reply.tasks, listedAfter: askedAt)
        case .taskStarted(let report), .taskStopped(let report): try await observe([report], listedAfter: nil)
        case .startOutcomes(let outcomes):
            for case .taskStarted(let report) in outcomes.outcomes.map(\.body) {
                try await observe([report], listedAfter: nil)
            }
        case .taskList(let reports): try await observe(reports, listedAfter: askedAt)
        case .error, .transferProgress, .fileInfo, .fileChunk, .logData: break
        }
    }

    init(
        serverID: ServerID, clients: [ChannelClient], log: TouchstoneLog, configuration: BackendConfiguration,
        logger: Logger, holds: PlacementHolds = PlacementHolds(), skew: ClockSkewEstimate = ClockSkewEstimate(nil)
    ) {
        self.holds = holds
        self.skew = skew
        self.serverID = serverID
        self.clients = clients
        self.log = log
        self.configuration = configuration
        self.logger = logger
        sends.linkStarted(at: configuration.clock.instant())
    }

    /// Hands work to the next free task channel.
    func enqueue(_ item: Work) {
        if routeThroughTransfers(item) { return }
        work.push(item)
    }

    /// Runs the control loop and the channel workers until cancelled.
    ///
    /// First each channel settles a request a previous backend process left outstanding (waiting for its response
    /// until its deadline, else draining the channel), so no new request is sent on a channel whose last one is
    /// unaccounted for.
    func run() async {
        for client in clients {
            await client.onSync { reply, askedAt in
                do {
                    try await observe(reply.tasks, listedAfter: askedAt)
                } catch {
                    logger.warning("reconciling a sync failed", metadata: ["server": "\(serverID)", "error": "\(error)"])
                }
            }
        }
        await withDiscardingTaskGroup { group in
            for client in clients {
                group.addTask {
                    do {
                        if let (response, askedAt) = try await client.settleInherited() {
                            try await handle(response, askedAt: askedAt)
                        }
                    } catch {
                        logger.warning(
                            "settling an inherited request failed",
                            metadata: ["channel": "\(client.channel)", "error": "\(error)"])
                    }
                }
            }
        }
        await withDiscardingTaskGroup { group in
            group.addTask { await control() }
            for client in Self.taskChannels(of: clients) {
                group.addTask { await worker(client) }
            }
            group.addTask { await transferLoop() }
        }
    }

    /// The control loop: `hello`, then one blocking heartbeat query after another. The agent answers a query at once
    /// when a task started, ended or was stopped since the state version the backend last saw, and otherwise after
    /// ``BackendConfiguration/statusInterval`` (the query's wait), so task ends reach the log as they happen and an
    /// idle server costs one small request and response per wait. A query left unanswered is resent with the same
    /// request ID (``ChannelClient``); only silence past the liveness threshold drains the channel and marks the
    /// server unreachable.
    private func control() async {
        guard let control = clients.first else { return }
        var greeted = false
        var reachable = true
        var since: String?
        var backoff = Duration.milliseconds(200)
        let wait = max(1, Int(configuration.statusInterval.seconds.rounded(.up)))
        while !Task.isCancelled {
            do {
                let askedAt = Date()
                if !greeted {
                    let response = try await control.call(
                        .hello, delivery: configuration.heartbeatTimeout, executionSeconds: 0)
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
                        try await observe(hello.tasks, listedAfter: askedAt)
                        try await recordHealth()
                        greeted = true
                        since = nil
                    }
                } else {
                    let response = try await control.call(
                        .heartbeat(HeartbeatQuery(since: since, waitSeconds: since == nil ? 0 : wait)),
                        delivery: configuration.heartbeatTimeout,
                        executionSeconds: (since == nil ? 0 : wait) + Int(configuration.heartbeatTimeout.seconds.rounded(.up)))
                    if case .heartbeat(let beat) = response.body {
                        try await observeGPUs(beat.gpus, problem: beat.gpuProblem)
                        try await observe(beat.tasks, listedAfter: askedAt)
                        try await recordHealth()
                        if beat.stateVersion == nil {
                            // An agent without blocking queries answers at once: poll it at the wait instead.
                            try await Task.sleep(for: configuration.statusInterval)
                        }
                        since = beat.stateVersion
                    }
                }
                backoff = .milliseconds(200)
                clients.first?.address.setReachable(true)
                if !reachable {
                    reachable = true
                    try await recordLiveness(reachable: true, missed: 0)
                }
            } catch is CancellationError {
                return
            } catch let error as BackendError where error.code == .desync {
                // The channel was drained; the next call syncs first, and the next query asks for everything.
                logger.info("control channel resynchronising", metadata: ["server": "\(serverID)", "error": "\(error)"])
                since = nil
                continue
            } catch let error as BackendError where error.code == .timeout {
                // Silent past the liveness threshold, resends included: the channel was drained.
                if Task.isCancelled { return }
                since = nil
                logger.warning("agent silent past the liveness threshold", metadata: ["server": "\(serverID)"])
                if reachable {
                    reachable = false
                    try? await recordLiveness(reachable: false, missed: configuration.missedHeartbeatsForUnreachable)
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("control channel call failed", metadata: ["server": "\(serverID)", "error": "\(error)"])
                // A queue or log failure: back off before asking again (the failure is in the log).
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(10))
            }
        }
    }

    /// The health verdict from the skew measured on the last response (``Decide/health(skewMilliseconds:tolerance:)``):
    /// recorded when it flips, so a server whose clock is fixed recovers by itself.
    private func recordHealth() async throws {
        let verdict = Decide.health(skewMilliseconds: skew.current, tolerance: configuration.maxClockSkew)
        guard sends.healthChanged(to: verdict) else { return }
        do {
            try await CommandAppender(log: log).execute(
                .health(skewMilliseconds: skew.current, tolerance: configuration.maxClockSkew), server: serverID,
                metadata: EventMetadata(actor: "backend"))
            if let verdict { logger.warning("server unhealthy", metadata: ["server": "\(serverID)", "reason": "\(verdict)"]) }
        } catch {
            sends.forgetHealth()
            throw error
        }
    }

    private func recordLiveness(reachable: Bool, missed: Int) async throws {
        // Silent past the threshold: the next requests are addressed to any agent of the server, so that a
        // replacement can answer; its answer readdresses them (``Decide/address(known:reachable:)``).
        clients.first?.address.setReachable(reachable)
        try await CommandAppender(log: log).execute(
            .liveness(reachable: reachable, missed: missed), server: serverID, metadata: EventMetadata(actor: "backend"))
    }

    private func observeGPUs(_ gpus: [GPUDevice], problem: String?) async throws {
        let row = try await log.store.read { db in try ReadModels.row(ServerCapacity.self, key: serverID.rawValue, in: db) }
        guard let row, row.gpus != gpus || row.gpuProblem != problem else { return }
        try await log.append(
            .serverGPUsObserved(ServerGPUsObserved(serverID: serverID, gpus: gpus, problem: problem)),
            metadata: EventMetadata(actor: "agent:\(serverID)"))
    }

    private func worker(_ client: ChannelClient) async {
        while let items = await work.take(maxStarts: StartTasks.maximumCount) {
            if items.count > 1 {
                await startBatch(items, on: client)
                continue
            }
            let item = items[0]
            do {
                switch item {
                case .start(let start, let requestID):
                    guard let deliverBy = try await recordSending(start, requestID: requestID, on: client) else { continue }
                    let response = try await client.call(
                        .startTask(start), taskID: start.taskID, requestID: requestID, deliverBy: deliverBy)
                    try await handleStartReply(response.body, start: start, item: item, on: client)
                case .stop(let attempt, let grace, _):
                    let response = try await client.call(
                        .stopTask(StopTask(taskID: attempt.taskID, attempt: attempt.attempt, graceSeconds: grace)),
                        taskID: attempt.taskID, executionSeconds: grace + configuration.executionSeconds)
                    if case .taskStopped(let report) = response.body {
                        try await observe([report], listedAfter: nil)
                    } else {
                        // Anything but "stopped" (or "never will be", a tombstone reported as stopped) is retried until
                        // the agent confirms: a stop is never dropped (issue 17 part 2).
                        logger.warning(
                            "stop not confirmed: retrying",
                            metadata: ["task.id": "\(attempt.taskID)", "reply": "\(response.body.status)"])
                        resend(item)
                    }
                }
            } catch {
                if !handleWorkFailure(error, items: [item]) { return }
            }
        }
    }

    /// Several starts in one `startTasks` request: each is checked and recorded as sending on its own (with its own
    /// request ID, under which the agent journals its outcome), then all travel in one round trip.
    private func startBatch(_ items: [Work], on client: ChannelClient) async {
        var ready: [(StartTask, RequestID)] = []
        var deliverBy: Date?
        do {
            for case .start(let start, let requestID) in items {
                guard let sendBy = try await recordSending(start, requestID: requestID, on: client, deliverBy: deliverBy)
                else { continue }
                deliverBy = sendBy
                ready.append((start, requestID))
            }
            guard let deliverBy, !ready.isEmpty else { return }
            let sent = ready.map { Work.start($0.0, $0.1) }
            do {
                let response = try await client.call(
                    .startTasks(StartTasks(items: ready.map { StartTasks.Item(requestID: $0.1, start: $0.0) })),
                    deliverBy: deliverBy)
                guard case .startOutcomes(let outcomes) = response.body else {
                    // A refusal of the whole request (e.g. a stale epoch) applies to each start.
                    for (start, requestID) in ready {
                        try await handleStartReply(response.body, start: start, item: .start(start, requestID), on: client)
                    }
                    return
                }
                for (start, requestID) in ready {
                    let body =
                        outcomes.outcomes.first { $0.requestID == requestID }?.body
                        ?? .error(WireError(.executionFailed, "the agent's reply had no outcome for this start"))
                    try await handleStartReply(body, start: start, item: .start(start, requestID), on: client)
                }
            } catch {
                _ = handleWorkFailure(error, items: sent)
            }
        } catch {
            _ = handleWorkFailure(error, items: ready.map { Work.start($0.0, $0.1) })
        }
    }

    /// Checks that a start is still wanted and records `task.start-sending` against the version checked, before the
    /// send: a withdrawal or cancel decided meanwhile fails this append (or this one fails it), so a withdrawn start
    /// is never sent. A start that changed meanwhile goes back on the queue to be checked again.
    ///
    /// - Returns: The delivery deadline recorded, or `nil` when the start is not to be sent now.
    private func recordSending(
        _ start: StartTask, requestID: RequestID, on client: ChannelClient, deliverBy: Date? = nil
    ) async throws -> Date? {
        guard let version = try await stillWanted(start) else { return nil }
        let deliverBy = deliverBy ?? configuration.clock.now().addingTimeInterval(configuration.requestTimeout.seconds)
        do {
            try await log.append(
                [
                    .init(
                        .taskStartSending(
                            TaskStartSending(
                                taskID: start.taskID, attempt: start.attempt, requestID: requestID,
                                serverID: serverID, channel: client.channel.index, expiresAt: deliverBy)),
                        expectedVersion: .exact(version),
                        metadata: EventMetadata(actor: "backend", correlationID: requestID.rawValue))
                ])
        } catch {
            guard error.code == .wrongExpectedVersion else { throw error }
            enqueue(.start(start, requestID))  // the task changed since the check: check again
            return nil
        }
        sends.sent(TaskAttempt(taskID: start.taskID, attempt: start.attempt), at: configuration.clock.instant())
        return deliverBy
    }

    /// What a start's reply means for its task. A refusal holds the server back for a backoff (no tight loop of
    /// starts it refuses) and is decided by ``Decide/task(_:given:)`` (`.startRefused`); a refusal by the agent's
    /// capacity guard is logged as `server.capacity-violation-refused` and the server is reconciled, since the
    /// backend's view of it is wrong (issue 17 part 1).
    private func handleStartReply(_ body: ResponseBody, start: StartTask, item: Work, on client: ChannelClient) async throws {
        switch body {
        case .taskStarted(let report):
            holds.accepted(serverID)
            try await observe([report], listedAfter: nil)
        case .error(let error) where error.code == .staleEpoch:
            enqueue(item)  // the agent saw a newer epoch: the next call syncs, then resends
        case .error(let error):
            holds.refused(serverID, now: configuration.clock.instant())
            let meta = EventMetadata(actor: "agent:\(serverID)")
            if error.code == .capacityExceeded {
                logger.warning(
                    "start refused by the agent's capacity guard: reconciling",
                    metadata: ["server": "\(serverID)", "task.id": "\(start.taskID)", "reason": "\(error.message)"])
                try await log.append(
                    .serverCapacityViolationRefused(
                        ServerCapacityViolationRefused(
                            serverID: serverID, taskID: start.taskID, attempt: start.attempt, message: error.message,
                            maxTasks: start.capacity?.maxTasks, bookedGPUs: start.capacity?.bookedGPUs,
                            serverVersion: start.capacity?.serverVersion)),
                    metadata: meta)
            }
            do {
                try await CommandAppender(log: log).execute(
                    .startRefused(
                        attempt: start.attempt, server: serverID, code: error.code.rawValue, message: error.message,
                        maxAttempts: configuration.maxAttempts),
                    task: start.taskID, metadata: meta)
            } catch is Rejection {}  // the row moved on meanwhile
            if error.code == .capacityExceeded {
                let askedAt = Date()
                if case .taskList(let reports) = try await client.call(.listTasks).body {
                    try await observe(reports, listedAfter: askedAt)
                }
            }
        default:
            logger.warning("unexpected reply to a start", metadata: ["task.id": "\(start.taskID)"])
        }
    }

    /// What a failed call means for its work items.
    ///
    /// - Returns: `false` when the worker is to stop (cancelled).
    private func handleWorkFailure(_ error: any Error, items: [Work]) -> Bool {
        if error is CancellationError { return false }
        if let error = error as? BackendError, error.code == .desync {
            // The channel was drained, so the request may never have reached the agent. It is sent again with the
            // same request ID: an agent that executed it answers from its journal, never twice.
            logger.info("resending after a desync", metadata: ["server": "\(serverID)", "error": "\(error)"])
            for item in items { resend(item) }
        } else if let error = error as? BackendError, error.code == .timeout {
            // A start is not resent on a timeout: the agent may be down, and an expired start is never executed,
            // so the next complete inventory settles it (see `observe`). A stop is idempotent: retried.
            logger.warning("task channel call timed out", metadata: ["server": "\(serverID)", "error": "\(error)"])
            for item in items { if case .stop = item { resend(item) } }
        } else {
            logger.warning("task channel call failed", metadata: ["server": "\(serverID)", "error": "\(error)"])
        }
        return true
    }

    /// Puts work back on the queue. A stop is retried until the agent confirms it (each retry is a new request, so
    /// it is paced by the round trip or by the request's deadline).
    private func resend(_ item: Work) {
        switch item {
        case .start: enqueue(item)
        case .stop(let attempt, let grace, let tries): enqueue(.stop(attempt, graceSeconds: grace, tries: tries + 1))
        }
    }

    /// The rule for a booking that a drain or capacity cut overtook: a start not yet sent when the server stopped
    /// taking tasks is withdrawn (logged as `task.dispatch-withdrawn`, the task is queued again); a start already sent
    /// runs and counts against the server until it ends, so nothing is lost and nothing new is booked past the limit.
    ///
    /// - Returns: The task stream's version the decision was made on, when the start is still wanted; `nil` when not
    ///   (withdrawn now, or no longer dispatching or starting).
    func stillWanted(_ start: StartTask) async throws -> Int64? {
        let (server, task) = try await log.store.read { db in
            (
                try ReadModels.row(ServerCapacity.self, key: serverID.rawValue, in: db),
                try ReadModels.row(TaskBoard.self, key: start.taskID.rawValue, in: db)
            )
        }
        guard let task, task.attempt == start.attempt, task.status == .dispatching || task.status == .starting else {
            return nil
        }
        let version = task.streamVersion
        guard let server else { return nil }
        let overBooked = server.booked.count > server.maxTasks
        // A start already recorded as sending (a resend after a desync or a restart) may have reached the agent: it
        // is never withdrawn here, only resent with the same request ID (at most once on the agent); the
        // expired-start rule withdraws it if the agent never had it. (tools/chaos found this: a resend withdrawn
        // because the server had turned unreachable let attempt 1 run beside attempt 2.)
        if task.status == .starting { return task.cancelRequestedAt == nil ? version : nil }
        let reason: String
        if task.cancelRequestedAt != nil {
            reason = "cancelled before the start was sent"
        } else {
            guard server.state != .attached || overBooked || server.detachRequested != nil else { return version }
            reason =
                "\(serverID) stopped taking tasks (\(server.state.rawValue), \(server.booked.count) booked of max "
                + "\(server.maxTasks)) before the start was sent"
        }
        do {
            try await CommandAppender(log: log, attempts: 1).execute(
                .withdraw(attempt: start.attempt, server: serverID, reason: reason), task: start.taskID,
                metadata: EventMetadata(actor: "backend"))
        } catch is Rejection {
            return nil  // no longer a booking waiting to be sent
        } catch let error as EventStoreError where error.code == .wrongExpectedVersion {
            return nil  // changed meanwhile: whoever changed it decided
        }
        logger.info("dispatch withdrawn", metadata: ["task.id": "\(start.taskID)", "server": "\(serverID)"])
        return nil
    }

    /// Appends the transitions that the agent's reports imply, each with the task stream's expected version so that
    /// two channels reporting the same end record it once.
    ///
    /// - Parameter listedAfter: Set when the reports are the agent's whole list, taken after this instant (the
    ///   request's send time): a task the log held as running on this server *before* that instant and missing from
    ///   the list is lost (its process disappeared), and requeued under the retry policy. A task seen running only
    ///   later may simply have started after the list was taken. `nil` for a single task's report.
    func observe(_ reports: [TaskStatusReport], listedAfter: Date?) async throws {
        let complete = listedAfter != nil
        // Only this server's rows: the tasks it books and the tasks reported (never the whole board).
        let server = try await log.serverRow(serverID)
        var live: [TaskRow] = []
        if let server { live = try await log.liveTasks(on: server.serverID) }
        var tasks = try await log.taskRows(Set(reports.map(\.taskID)))
        for row in live { tasks[row.taskID] = row }
        let deadlinePassed = server?.drain?.deadline.map { $0 <= Date() } ?? false
        let context = Reconciler.Context(
            server: serverID, stoppedForDrain: deadlinePassed, maxAttempts: configuration.maxAttempts)
        var decisions: [(TaskID, Decide.TaskCommand)] = []
        for report in reports where tasks[report.taskID] != nil {
            decisions.append((report.taskID, .report(report, context: context)))
        }
        if complete {
            let reported = Set(reports.map(\.key))
            let reason = "the agent on \(serverID) no longer has this task's process"
            // A start the agent does not have, past its delivery deadline (plus the execution deadline and 5 s for
            // clock skew): the agent never executes an expired request, so the attempt never ran. It is withdrawn
            // and the task queued again.
            // A start not yet sent (`dispatching`) is left to its channel worker, which withdraws it or records
            // `task.start-sending` before sending: deciding here too would race with that send.
            let now = configuration.clock.instant()
            for row in live
            where row.serverID == serverID && row.status == .starting
                && !reported.contains(TaskAttempt(taskID: row.taskID, attempt: row.attempt))
                && Decide.startExpired(
                    sentFor: sends.elapsed(TaskAttempt(taskID: row.taskID, attempt: row.attempt), now: now),
                    requestTimeout: configuration.requestTimeout, executionSeconds: configuration.executionSeconds)
            {
                decisions.append((row.taskID, .expireStart(attempt: row.attempt, server: serverID)))
            }
            let listedAfter = listedAfter ?? .distantPast
            for row in live
            where row.serverID == serverID && row.status == .running
                && !reported.contains(TaskAttempt(taskID: row.taskID, attempt: row.attempt))
                && (row.runningObservedAt ?? .distantPast) < listedAfter
            {
                decisions.append(
                    (row.taskID, .lose(attempt: row.attempt, reason: reason, maxAttempts: configuration.maxAttempts)))
            }
        }
        if complete { try await cleanUp(reports, tasks: tasks) }
        let appender = CommandAppender(log: log)
        for (task, command) in decisions {
            let meta = EventMetadata(actor: "agent:\(serverID)", correlationID: tasks[task]?.requestID?.rawValue)
            do {
                let events = try await appender.execute(command, task: task, metadata: meta)
                if events.contains(where: { if case .taskFinished = $0 { true } else { false } }) {
                    if case .report(let report, _) = command, let bytes = report.logBytes {
                        transferState.noteLogBytes(report.key, bytes)
                    }
                    transferState.noteEnded([task])
                }
            } catch is Rejection {
                continue  // the row moved on meanwhile: nothing to do
            } catch let error as EventStoreError where error.code == .wrongExpectedVersion {
                continue  // kept changing: the next report reconciles again
            }
        }
    }

    /// Cleanup: stops every running attempt the agent reports that the log does not hold as live on this server
    /// (dispatching, starting or running, same attempt). Each is logged as `server.unrecognised-task` once, then
    /// stopped on a task channel. It runs on every complete inventory (hello, heartbeat, sync), so it repeats until an
    /// inventory finds nothing new. Agents report only attempts carrying Touchstone's labels: an engineer's own
    /// processes and containers never appear here.
    private func cleanUp(_ reports: [TaskStatusReport], tasks: [TaskID: TaskRow]) async throws {
        let running = reports.filter { $0.state == .running }
        await cleaning.retain(Set(running.map(\.key)))
        for report in running {
            let row = tasks[report.taskID]
            let live: Set<TaskStatus> = [.dispatching, .starting, .running]
            if let row, row.serverID == serverID, row.attempt == report.attempt, live.contains(row.status) { continue }
            // Acted on when a second inventory still shows it: one list may predate the transition the log holds.
            guard await cleaning.claim(report.key) else { continue }
            let reason: String
            if let row {
                reason =
                    row.attempt != report.attempt || row.serverID != serverID
                    ? "attempt \(report.attempt) was superseded: the task's attempt \(row.attempt) is on \(row.serverID?.rawValue ?? "no server")"
                    : "the task is \(row.status.rawValue) in the log"
            } else {
                reason = "no such task in the log"
            }
            logger.warning(
                "unrecognised task: stopping it",
                metadata: ["server": "\(serverID)", "task.id": "\(report.taskID)", "reason": "\(reason)"])
            try await log.append(
                .unrecognisedTaskFound(
                    UnrecognisedTaskFound(serverID: serverID, taskID: report.taskID, attempt: report.attempt, reason: reason)),
                metadata: EventMetadata(actor: "backend"))
            enqueue(.stop(report.key, graceSeconds: configuration.stopGraceSeconds))
        }
    }
}

/// The attempts a server link is cleaning up: each is suspected on its first sighting and claimed on its second,
/// once.
actor CleanupTracker {
    private var suspected: Set<TaskAttempt> = []
    private var claimed: Set<TaskAttempt> = []

    /// `true` once per attempt, on its second sighting as unrecognised.
    func claim(_ attempt: TaskAttempt) -> Bool {
        guard suspected.contains(attempt) else {
            suspected.insert(attempt)
            return false
        }
        return claimed.insert(attempt).inserted
    }

    /// Forgets attempts that no longer run, so a later reappearance is cleaned up again.
    func retain(_ running: Set<TaskAttempt>) {
        claimed.formIntersection(running)
        suspected.formIntersection(running)
    }
}

/// The starts and stops of one server link, waiting for a task channel: FIFO, except that a worker taking a start
/// takes the other waiting starts with it (up to a limit) so that they travel in one `startTasks` request.
final class WorkQueue: Sendable {
    private struct State {
        var items: [ServerLink.Work] = []
        var closed = false
    }

    private let state = Mutex(State())
    private let signal = ChangeSignal()

    /// Adds an item at the end.
    func push(_ item: ServerLink.Work) {
        state.withLock { $0.items.append(item) }
        signal.bump()
    }

    /// Ends every ``take(maxStarts:)`` once the queue is empty.
    func close() {
        state.withLock { $0.closed = true }
        signal.close()
    }

    /// The next item; when it is a start, every other waiting start too, up to `maxStarts`. Waits while the queue is
    /// empty; `nil` once closed (or cancelled).
    func take(maxStarts: Int) async -> [ServerLink.Work]? {
        while !Task.isCancelled {
            let generation = signal.generation
            let taken: [ServerLink.Work]? = state.withLock { state in
                guard !state.items.isEmpty else { return state.closed ? [] : nil }
                let first = state.items.removeFirst()
                guard case .start = first else { return [first] }
                var batch = [first]
                var index = 0
                while index < state.items.count, batch.count < maxStarts {
                    if case .start = state.items[index] {
                        batch.append(state.items.remove(at: index))
                    } else {
                        index += 1
                    }
                }
                return batch
            }
            if let taken { return taken.isEmpty ? nil : taken }
            await signal.wait(after: generation, timeout: .seconds(3600))
        }
        return nil
    }
}

/// A server link's monotonic bookkeeping: when each start was last recorded as sending (a start inherited from an
/// earlier backend process counts from the link's start), and the last health verdict recorded.
final class SendClock: Sendable {
    private struct State {
        var linkStarted: ContinuousClock.Instant = .now
        var sent: [TaskAttempt: ContinuousClock.Instant] = [:]
        var health: String?? = .none
    }

    private let state = Mutex(State())

    func linkStarted(at instant: ContinuousClock.Instant) { state.withLock { $0.linkStarted = instant } }

    func sent(_ attempt: TaskAttempt, at instant: ContinuousClock.Instant) {
        state.withLock { state in
            state.sent[attempt] = instant
            // Bounded by what is in flight: entries older than any start could be are dropped.
            if state.sent.count > 4_096 {
                state.sent = state.sent.filter { instant - $0.value < .seconds(3_600) }
            }
        }
    }

    /// How long ago a start was last sent (or the link started, for one this process never sent).
    func elapsed(_ attempt: TaskAttempt, now: ContinuousClock.Instant) -> Duration {
        state.withLock { now - ($0.sent[attempt] ?? $0.linkStarted) }
    }

    /// Whether `verdict` differs from the last one recorded (or none was); remembers it.
    func healthChanged(to verdict: String?) -> Bool {
        state.withLock { state in
            if case .some(let last) = state.health, (last == nil) == (verdict == nil) { return false }
            state.health = .some(verdict)
            return true
        }
    }

    /// Forgets the last verdict, so the next one is recorded (after a failed append).
    func forgetHealth() { state.withLock { $0.health = .none } }
}
