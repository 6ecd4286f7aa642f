@preconcurrency import Crypto
import Domain
import EventStore
import Foundation
import Logging
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// Executes one request at most once, journaling its outcome before the response is sent.
struct RequestHandler: Sendable {
    let configuration: AgentConfiguration
    let journal: AgentJournal
    let tasks: AgentTasks
    let runtime: any TaskRuntime
    let epochs: ChannelEpochs
    /// Signature and replay checks, before a message is read.
    let requestGuard: RequestGuard
    /// This agent process's instance; every response carries it.
    let identity: AgentIdentity
    let logger: Logger
    /// The GPU inventory, re-read when a task starts or ends and at most once a minute otherwise.
    let gpuCache = GPUReadingCache()

    /// The longest a heartbeat query is held, in seconds, whatever the backend asks.
    static let maximumHeartbeatWait = 300

    /// Handles a raw message from a request queue.
    ///
    /// - Returns: The response to send, or `nil` when the outcome could not be journaled (the message is then left on
    ///   the queue, to be redelivered after its visibility timeout).
    ///
    /// - Parameter accept: Called once a blocking query (a heartbeat with a wait) is admitted, before it waits: the
    ///   poller deletes its message then, since answering it again is harmless.
    func handle(_ body: String, channel: Int, accept: @Sendable () async -> Void = {}) async -> ResponseEnvelope? {
        guard var response = await answer(body, channel: channel, accept: accept) else { return nil }
        // Recorded responses of an earlier life of this agent are answered as this instance's.
        response.instance = identity.instance
        return response
    }

    private func answer(_ body: String, channel: Int, accept: @Sendable () async -> Void) async -> ResponseEnvelope? {
        // Nothing reads a message before its signature is checked; a refusal names only the message's hash.
        let digest: SHA256.Digest
        switch await requestGuard.check(body) {
        case .refused(let error):
            return refuse(error, channel: channel)
        case .signed(_, let signed):
            digest = signed
        }
        let request: RequestEnvelope
        do {
            request = try WireCoding.decodeRequest(body)
        } catch {
            logger.warning("malformed request", metadata: ["channel": "\(channel)", "error": "\(error)"])
            return ResponseEnvelope(
                requestID: WireCoding.salvageRequestID(body), server: configuration.serverID, channel: channel,
                epoch: -1, sequence: -1, agentTime: FaultClock.now(), body: .error(error))
        }
        if let replayed = await requestGuard.admit(digest, text: body, expiresAt: request.expiresAt) {
            return refuse(replayed, channel: channel)
        }
        let response = await respond(to: request, channel: channel, accept: accept)
        if response == nil { await requestGuard.forget(digest) }
        return response
    }

    /// The signed refusal of a message that was not admitted: no request ID, epoch or sequence of the message (its
    /// sender is not trusted), only a fixed reason and the message's hash (``RequestGuard/refusal(_:_:_:)``).
    private func refuse(_ error: WireError, channel: Int) -> ResponseEnvelope {
        logger.warning("request refused", metadata: ["channel": "\(channel)", "code": "\(error.code)", "reason": "\(error.message)"])
        return ResponseEnvelope(
            requestID: nil, server: configuration.serverID, channel: channel, epoch: -1, sequence: -1,
            agentTime: FaultClock.now(),
            body: .error(error))
    }

    private func respond(to request: RequestEnvelope, channel: Int, accept: @Sendable () async -> Void) async
        -> ResponseEnvelope?
    {
        var metadata: Logger.Metadata = ["request.id": "\(request.requestID)", "command": "\(request.command.name)"]
        metadata["channel"] = "\(channel)"
        guard identity.accepts(request.instance) else {
            // Another agent serves this server: nothing is executed or journaled, and the answer is a notice only.
            let message =
                "this agent (instance \(identity.instance)) is fenced: server \(configuration.serverID)'s requests are "
                + "addressed to agent instance \(request.instance ?? "?"), which runs elsewhere; two agents must not "
                + "serve one server"
            logger.critical("fenced", metadata: metadata.merging(["addressed": "\(request.instance ?? "")"]) { $1 })
            return ResponseEnvelope(
                requestID: request.requestID, server: configuration.serverID, channel: channel, epoch: request.epoch,
                sequence: request.sequence, agentTime: Date(), body: .error(WireError(.fenced, message)))
        }
        do {
            // Epoch fencing: a request sent before the backend drained this channel is refused, not executed, and not
            // journaled (the same request ID may come again in the new epoch).
            if let current = try await epochs.admit(request.epoch, channel: channel) {
                logger.warning("request of an old epoch refused", metadata: metadata.merging(["epoch": "\(current)"]) { $1 })
                return ResponseEnvelope(
                    requestID: request.requestID, server: configuration.serverID, channel: channel,
                    epoch: request.epoch, sequence: request.sequence, agentTime: FaultClock.now(),
                    body: .error(
                        WireError(
                            .staleEpoch,
                            "epoch \(request.epoch) is older than channel \(channel)'s epoch \(current); not executed",
                            epoch: current)))
            }
            if request.command.isTransfer {
                // Not journaled: idempotent, and their responses hold file data (see `Command.isTransfer`).
                return ResponseEnvelope(
                    requestID: request.requestID, server: configuration.serverID, channel: request.channel,
                    epoch: request.epoch, sequence: request.sequence, agentTime: FaultClock.now(), body: await execute(request))
            }
            if var recorded = try await journal.recordedResponse(for: request.requestID) {
                logger.info("request answered from the journal", metadata: metadata)
                // The recorded outcome, stamped with this delivery's epoch and sequence so that a resend after a
                // drain matches.
                recorded.epoch = request.epoch
                recorded.sequence = request.sequence
                recorded.channel = request.channel
                // Now, not when it was first answered: the backend measures clock skew from every response.
                recorded.agentTime = FaultClock.now()
                return recorded
            }
            let body = await execute(request, accept: accept)
            let response = ResponseEnvelope(
                requestID: request.requestID, server: configuration.serverID, channel: request.channel,
                epoch: request.epoch, sequence: request.sequence, agentTime: FaultClock.now(), body: body)
            return try await journal.record(response, for: request.requestID)
        } catch {
            logger.error("cannot journal the request's outcome", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            return nil
        }
    }

    private func execute(_ request: RequestEnvelope, accept: @Sendable () async -> Void = {}) async -> ResponseBody {
        guard request.server == configuration.serverID else {
            return .error(WireError(.wrongServer, "this agent serves \(configuration.serverID), not \(request.server)"))
        }
        if case .startTask(let start) = request.command,
            let known = await tasks.report(for: TaskAttempt(taskID: start.taskID, attempt: start.attempt))
        {
            // A start of an attempt this agent has (it launched it before a crash, say) is answered with its report,
            // whatever the deadline: nothing is executed, and an `expired` answer would make the backend requeue a
            // task that runs (verification/channel.pml, counterexample 4).
            return .taskStarted(known)
        }
        // A batch of starts checks each item (a known attempt is answered whatever the deadline).
        if case .startTasks = request.command {} else {
            guard request.expiresAt > FaultClock.now() else {
                return .error(WireError(.expired, "the request expired at \(request.expiresAt); it was not executed"))
            }
        }
        switch request.command {
        case .hello:
            let reading = await readGPUs()
            return .hello(
                HelloReply(
                    agentVersion: agentVersion, gpuCount: reading.gpus.count, tasks: await tasks.all, gpus: reading.gpus,
                    gpuProblem: reading.problem))
        case .heartbeat(let query):
            if let since = query.since, query.waitSeconds > 0 {
                await accept()
                // Held until a task changes state or the wait ends, but never past the request's execution deadline.
                let wait = min(query.waitSeconds, Self.maximumHeartbeatWait, max(0, (request.executionSeconds ?? 0) - 1))
                await tasks.waitForChange(after: since, timeout: .seconds(wait))
            }
            let (reports, version) = await tasks.heartbeatReports(since: query.since)
            let reading = await gpuCache.reading(taskState: version) { await readGPUs() }
            return .heartbeat(
                HeartbeatReply(
                    tasks: reports, gpus: reading.gpus, gpuProblem: reading.problem, stateVersion: version,
                    figures: .reading(await tasks.all)))
        case .listTasks:
            return .taskList(await tasks.all)
        case .sync(let sync):
            logger.notice(
                "channel resynchronised", metadata: ["epoch": "\(request.epoch)", "reason": "\(sync.reason)"])
            return .synced(SyncReply(epoch: request.epoch, tasks: await tasks.all))
        case .putChunk, .transferStatus, .statFile, .readChunk, .readLog:
            return await TransferHandler(configuration: configuration, tasks: tasks, logger: logger).execute(request.command)
        case .startTask(let start):
            return await startTask(start, requestID: request.requestID, expiresAt: request.expiresAt)
        case .startTasks(let batch):
            // Each item as a `startTask` of its own request ID: answered from the journal when that ID was executed
            // before, else started and journaled under it. The items start concurrently.
            let items = Array(batch.items.prefix(StartTasks.maximumCount))
            let bodies = await withTaskGroup(of: (Int, ResponseBody).self) { group in
                for (index, item) in items.enumerated() {
                    group.addTask { (index, await startItem(item, in: request)) }
                }
                var bodies = [ResponseBody?](repeating: nil, count: items.count)
                for await (index, body) in group { bodies[index] = body }
                return bodies
            }
            return .startOutcomes(
                StartOutcomes(
                    outcomes: zip(items, bodies).map { item, body in
                        StartOutcomes.Outcome(
                            requestID: item.requestID,
                            body: body ?? .error(WireError(.executionFailed, "no outcome for \(item.requestID)")))
                    }))
        case .stopTask(let stop):
            let key = TaskAttempt(taskID: stop.taskID, attempt: stop.attempt)
            if let tombstone = await tasks.tombstoneIfUnknown(key) { return .taskStopped(tombstone) }
            // Being launched by another request now: stopped as soon as its launch is recorded.
            if await tasks.isStarting(key) { _ = await tasks.awaitReport(key) }
            guard let report = await tasks.report(for: key) else {
                return .error(WireError(.unknownTask, "no attempt \(key) on this agent"))
            }
            if report.state == .running {
                _ = await runtime.stop(key, grace: .seconds(stop.graceSeconds))
            }
            return .taskStopped(await tasks.report(for: key) ?? report)
        }
    }

    /// One item of a `startTasks`: its journaled outcome, or a start journaled under the item's request ID.
    private func startItem(_ item: StartTasks.Item, in request: RequestEnvelope) async -> ResponseBody {
        if let recorded = try? await journal.recordedResponse(for: item.requestID) { return recorded.body }
        if let known = await tasks.report(for: TaskAttempt(taskID: item.start.taskID, attempt: item.start.attempt)) {
            return .taskStarted(known)
        }
        guard request.expiresAt > FaultClock.now() else {
            return .error(WireError(.expired, "the request expired at \(request.expiresAt); it was not executed"))
        }
        let body = await startTask(item.start, requestID: item.requestID, expiresAt: request.expiresAt)
        let response = ResponseEnvelope(
            requestID: item.requestID, server: configuration.serverID, channel: request.channel, epoch: request.epoch,
            sequence: request.sequence, agentTime: FaultClock.now(), body: body)
        do {
            return try await journal.record(response, for: item.requestID).body
        } catch {
            logger.error(
                "cannot journal a start's outcome", metadata: ["request.id": "\(item.requestID)", "error": "\(error)"])
            return body
        }
    }

    /// The GPUs, counting a compute process as ours when the runtime says it belongs to one of our running tasks.
    private func readGPUs() async -> GPUInventory.Reading {
        let owner = runtime.processOwner(of: await tasks.all.filter { $0.state == .running }.compactMap(\.pid))
        return await GPUInventory(command: configuration.nvidiaSMI).read(ours: owner)
    }

    private func startTask(_ start: StartTask, requestID: RequestID, expiresAt: Date) async -> ResponseBody {
        let key = TaskAttempt(taskID: start.taskID, attempt: start.attempt)
        do {
            try start.spec.validate()
        } catch {
            return .error(WireError(.badRequest, error.message))
        }
        // The task ID names a directory and a cgroup: it must be a plain name, never a path.
        guard TaskID.isValid(start.taskID.rawValue), start.attempt >= 1 else {
            return .error(WireError(.badRequest, "task ID \(start.taskID.rawValue.debugDescription) or attempt \(start.attempt) is not valid"))
        }
        // The agent's own policy, which no request can widen: outside it, the attempt fails to start with the reason.
        if await tasks.report(for: key) == nil,
            let refusal = configuration.policy.refusal(
                for: start.spec, runtime: configuration.runtime.kind, defaultImage: configuration.runtime.defaultImage,
                runAsUID: configuration.runtime.runAs?.uid, agentUID: geteuid())
        {
            logger.warning("task refused by the agent's policy", metadata: ["task.id": "\(start.taskID)", "reason": "\(refusal)"])
            return .taskStarted(
                TaskStatusReport(
                    taskID: start.taskID, attempt: start.attempt, state: .failedToStart, endedAt: Date(), reason: refusal))
        }
        // Sealed secrets open here, to the task's environment only (never journaled, never in a report).
        let secrets: [String: String]
        switch SecretEnvironment.open(start.spec.secrets, server: configuration.serverID, key: configuration.sealingKey) {
        case .success(let opened): secrets = opened
        case .failure(let error):
            return .taskStarted(
                TaskStatusReport(
                    taskID: start.taskID, attempt: start.attempt, state: .failedToStart, endedAt: Date(),
                    reason: error.message))
        }
        if await tasks.report(for: key) == nil,
            let missing = TransferHandler.missingInput(start, directory: configuration.taskDirectory(key))
        {
            return .error(WireError(.executionFailed, missing))
        }
        switch await tasks.reserve(key, gpus: start.gpuIndices, capacity: start.capacity) {
        case .reserved: break
        case .taken:
            // Idempotent per (task, attempt): adopt what runs or ran, never start a second process.
            if let existing = await tasks.awaitReport(key) { return .taskStarted(existing) }
            return .error(WireError(.executionFailed, "attempt \(key) could not be started"))
        case .refused(let message):
            logger.warning("start refused by the capacity guard", metadata: ["task.id": "\(start.taskID)", "reason": "\(message)"])
            return .error(WireError(.capacityExceeded, message))
        }
        let directory = configuration.taskDirectory(key)
        let labels = [
            "touchstone.backend": start.backend, "touchstone.task": start.taskID.rawValue,
            "touchstone.attempt": String(start.attempt), "touchstone.request": requestID.rawValue,
            "touchstone.directory": directory,
            "touchstone.outputs": start.spec.outputs.joined(separator: "\n"),
            CapacityGuard.label: start.gpuIndices.map(String.init).joined(separator: ","),
        ]
        var spec = start.spec
        spec.secrets = []
        spec.environment.merge(secrets) { _, secret in secret }
        if !start.gpuIndices.isEmpty {
            // The task sees exactly the GPUs booked for it.
            let visible = start.gpuIndices.map(String.init).joined(separator: ",")
            spec.environment["CUDA_VISIBLE_DEVICES"] = visible
            spec.environment["NVIDIA_VISIBLE_DEVICES"] = visible
        }
        do {
            // Journaled before the process exists: an agent killed between the launch and its record finds the
            // attempt on restart (and adopts its process) instead of launching it a second time.
            try await journal.recordLaunching(
                TaskStatusReport(
                    taskID: start.taskID, attempt: start.attempt, state: .failedToStart,
                    reason: "the agent stopped while launching the attempt", labels: labels))
        } catch {
            await tasks.release(key)
            return .error(WireError(.executionFailed, "cannot journal the launch, so it was not started: \(error)"))
        }
        guard expiresAt > FaultClock.now() else {
            // Checked again right before the launch: time passed since the request was admitted (a slow journal, a
            // busy CPU), and the backend withdraws a start the agent lacks once its deadline passed
            // (verification/channel.pml, counterexample 2).
            let refused = TaskStatusReport(
                taskID: start.taskID, attempt: start.attempt, state: .failedToStart,
                reason: "the start request expired at \(expiresAt) before the launch; it was not launched", labels: labels)
            try? await tasks.started(refused)
            return .error(WireError(.expired, refused.reason ?? "expired"))
        }
        let report = await runtime.start(key, spec: spec, labels: labels, directory: directory)
        Failpoint.crash(at: "agent.after-launch")
        do {
            try await tasks.started(report)
        } catch {
            logger.error("cannot journal a task start", metadata: ["task.id": "\(start.taskID)", "error": "\(error)"])
        }
        logger.info(
            "task started",
            metadata: ["task.id": "\(start.taskID)", "attempt": "\(start.attempt)", "state": "\(report.state)"])
        return .taskStarted(await tasks.report(for: key) ?? report)
    }
}
