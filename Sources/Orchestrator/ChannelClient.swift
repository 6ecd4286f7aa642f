import Domain
import EventStore
import Foundation
import Logging
import Projections
import Transport
import Wire

/// One channel seen from the backend: at most one outstanding request, every request and response recorded, and the
/// recovery protocol when the two sides fall out of sync.
///
/// A response that names another request ID, or an older epoch, is a desync; so is an outstanding request left
/// unanswered past its deadline. The client then appends `channel.desync-detected`, drains both queues by
/// receive-and-delete (PurgeQueue is not used: it may take 60 s and can delete messages sent after the call),
/// appends `channel.queues-drained` with every drained message ID and the new epoch, and before its next request
/// sends `sync` with that epoch. The agent refuses any request of an older epoch from then on.
actor ChannelClient {
    let channel: ChannelID
    let requests: any MessageQueue
    let responses: any MessageQueue
    let log: TouchstoneLog
    let configuration: BackendConfiguration
    let logger: Logger
    /// The agent instance this server's requests are addressed to, shared with the server's other channels.
    let address: AgentAddress
    /// The instance the outstanding request was addressed to (``RequestEnvelope/instance``).
    private var addressed: String?
    private var epoch: Int64
    private var sequence: Int64
    /// The request a previous backend process left outstanding (from the `channel_sync` read model).
    private var inherited: OutstandingRequest?
    /// Set by a drain: the next request on the channel is preceded by `sync`.
    private var pendingSync: String?
    /// The agent's epoch when it refused a request as stale: the next drain moves above it.
    private var floor: Int64 = 0
    /// Receives each `sync` reply: the agent's whole inventory, to reconcile and clean up.
    private var onSync: (@Sendable (SyncReply, Date) async -> Void)?
    /// The request IDs answered most recently in this epoch: a second response to one of them (the agent answered a
    /// resend from its journal after answering the original late) is a duplicate, not a desync.
    private var answered: [RequestID] = []
    /// The names of the commands that change nothing on the agent (``Command/isReadOnly``), as the log records them.
    static let readOnlyCommands: Set<String> = ["hello", "listTasks", "heartbeat", "transferStatus", "statFile", "readChunk", "readLog"]

    /// How many answered request IDs are remembered.
    static let answeredMemory = 16
    /// Whether a call is under way, and the callers waiting for it to end, in arrival order.
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    private func acquire() async {
        if !busy {
            busy = true
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    /// Hands the channel to the next waiting caller, or frees it.
    private func release() {
        if waiting.isEmpty {
            busy = false
        } else {
            waiting.removeFirst().resume()
        }
    }

    /// The server's measured clock skew: delivery deadlines are sent in the agent's time.
    let skew: ClockSkewEstimate

    init(
        channel: ChannelID, requests: any MessageQueue, responses: any MessageQueue, log: TouchstoneLog,
        state: ChannelRow?, configuration: BackendConfiguration, logger: Logger,
        address: AgentAddress = AgentAddress(known: nil, reachable: true),
        skew: ClockSkewEstimate = ClockSkewEstimate(nil)
    ) {
        self.address = address
        self.addressed = address.known
        self.skew = skew
        self.channel = channel
        self.requests = requests
        self.responses = responses
        self.log = log
        self.configuration = configuration
        self.logger = logger
        self.epoch = state?.epoch ?? 0
        self.sequence = state?.lastSequence ?? 0
        self.inherited = state?.outstanding
        // A previous process's answered requests: their answers, redelivered after it stopped, are duplicates.
        self.answered = state?.recentlyAnswered ?? []
    }

    /// Sets the handler of `sync` replies.
    /// Sets the handler of `sync` replies: the reply, and when the `sync` was sent (the inventory is newer).
    func onSync(_ handler: @escaping @Sendable (SyncReply, Date) async -> Void) { onSync = handler }

    /// The channel's current epoch.
    var currentEpoch: Int64 { epoch }

    /// Settles a request that a previous backend process left outstanding: waits for its response until the
    /// request's execution deadline; without one by then, the channel is drained.
    ///
    /// - Returns: The response and when its request was sent, when it came; `nil` when nothing was outstanding or the
    ///   channel was drained.
    /// - Throws: A queue or log error.
    func settleInherited() async throws -> (ResponseEnvelope, Date)? {
        guard let outstanding = inherited else { return nil }
        inherited = nil
        await acquire()
        defer { release() }
        if Self.readOnlyCommands.contains(outstanding.command) {
            // A report (a blocking heartbeat query, say) changes nothing on the agent: it is not waited for. Its
            // answer, when it comes, is recognised as a duplicate rather than a desync, and the next query asks anew.
            remember(outstanding.requestID)
            logger.info(
                "a report request left outstanding by the previous backend is not waited for",
                metadata: ["channel": "\(channel)", "request.id": "\(outstanding.requestID)", "command": "\(outstanding.command)"])
            return nil
        }
        let answerBy = outstanding.answerBy ?? outstanding.expiresAt.addingTimeInterval(30)
        // The previous process's deadline is all there is across a restart (wall time), bounded by the longest a
        // request may take, so a wall clock that jumped meanwhile neither waits for ever nor skips the wait wrongly:
        // silence past it drains the channel, which a resend with the same request ID recovers from.
        let longest = configuration.requestTimeout + .seconds(configuration.executionSeconds) + configuration.heartbeatTimeout
        let wait = min(
            longest,
            Duration.milliseconds(max(0, Int64(answerBy.timeIntervalSince(configuration.clock.now()) * 1000))))
        logger.info(
            "waiting for a response left outstanding by the previous backend",
            metadata: ["channel": "\(channel)", "request.id": "\(outstanding.requestID)", "wait": "\(wait)"])
        do {
            // Recorded just after the send: a second earlier is surely before the agent listed anything.
            return (
                try await awaitResponse(to: outstanding.requestID, for: wait, syncing: false),
                outstanding.sentAt.addingTimeInterval(-1))
        } catch let error as BackendError {
            guard error.code == .timeout || error.code == .desync else { throw error }
            if error.code == .timeout {
                try await drain(
                    ChannelDesyncDetected(
                        channel: channel, epoch: epoch, reason: "unanswered", expectedRequestID: outstanding.requestID))
            }
            return nil
        }
    }

    /// Sends one command and waits for its response. Actor isolation makes calls on one channel strictly serial.
    /// After a drain, the command is preceded by `sync`.
    ///
    /// - Parameters:
    ///   - command: The command.
    ///   - taskID: The task it is about, for the log.
    ///   - requestID: The request ID to use (a resend reuses the original ID with a new deduplication ID).
    ///   - delivery: The delivery deadline (default ``BackendConfiguration/requestTimeout``).
    ///   - deliverBy: The delivery deadline as an instant, when the caller recorded it before the call (a start's
    ///     `task.start-sending`); overrides `delivery`.
    ///   - executionSeconds: The execution deadline once delivered (default
    ///     ``BackendConfiguration/executionSeconds``).
    /// - Returns: The matching response.
    /// - Throws: ``BackendError`` `.timeout` when no response arrives by the execution deadline (the channel is then
    ///   drained), `.desync` when a mismatched response made the channel drain (the caller may resend with the same
    ///   request ID: the agent answers a request it executed from its journal); a queue or log error when those fail.
    ///   - drainOnSilence: Whether silence past every resend drains the channel (a desync). `false` for a report
    ///     request to a server already unreachable: silence again is no news, and a drain each time would fill the
    ///     log (about 14,000 events a day for one server without an agent); a late answer is then a duplicate.
    func call(
        _ command: Command, taskID: TaskID? = nil, requestID: RequestID = .make(), delivery: Duration? = nil,
        deliverBy: Date? = nil, executionSeconds: Int? = nil, drainOnSilence: Bool = true
    ) async throws -> ResponseEnvelope {
        // One outstanding request per channel: an actor is reentrant across awaits, so two callers (a task worker and
        // the transfer loop sharing a channel) would otherwise each receive the other's response.
        await acquire()
        defer { release() }
        try Task.checkCancellation()
        if let reason = pendingSync {
            let askedAt = Date()
            let response = try await exchange(
                .sync(SyncChannel(epoch: epoch, reason: reason)), taskID: nil, requestID: .make(),
                delivery: delivery ?? configuration.requestTimeout,
                // The sync takes the deadlines of the call it precedes (a heartbeat's are short), capped at the
                // configured execution deadline: it only lists.
                executionSeconds: min(executionSeconds ?? configuration.executionSeconds, configuration.executionSeconds),
                syncing: true)
            pendingSync = nil
            if case .synced(let reply) = response.body { await onSync?(reply, askedAt) }
        }
        return try await exchange(
            command, taskID: taskID, requestID: requestID, delivery: delivery ?? configuration.requestTimeout,
            deliverBy: deliverBy, executionSeconds: executionSeconds ?? configuration.executionSeconds, syncing: false,
            drainOnSilence: drainOnSilence || !command.isReadOnly)
    }

    private func exchange(
        _ command: Command, taskID: TaskID?, requestID: RequestID, delivery: Duration, deliverBy: Date? = nil,
        executionSeconds: Int, syncing: Bool, drainOnSilence: Bool = true
    ) async throws -> ResponseEnvelope {
        sequence += 1
        let started = ContinuousClock.now
        let sentAt = configuration.clock.now()
        let expiresAt = deliverBy ?? sentAt.addingTimeInterval(delivery.seconds)
        addressed = address.current
        // The delivery deadline travels in the agent's time: the backend's, corrected by the measured skew
        // (docs/recovery.md, "Delivery deadlines and clock skew"). The log keeps the backend's.
        let envelope = RequestEnvelope(
            requestID: requestID, server: channel.server, channel: channel.index, epoch: epoch, sequence: sequence,
            sentAt: sentAt, expiresAt: Self.agentTime(expiresAt, skewMilliseconds: skew.current),
            executionSeconds: executionSeconds, command: command, instance: addressed)
        // A fresh deduplication ID per send: SQS remembers IDs for 5 minutes even after delete, so a resend of the
        // same request ID must not reuse one.
        let dedup = "\(requestID)-\(epoch)-\(sequence)-\(UInt32.random(in: 0...UInt32.max))"
        let signed = try await sign(envelope)
        let sent = try await recordingFailure("send") {
            try await self.requests.send(signed, groupID: "channel-\(channel.index)", deduplicationID: dedup)
        }
        Failpoint.crash(at: "backend.after-send", detail: command.name)
        try await recordSent(envelope, expiresAt: expiresAt, command: command, taskID: taskID, messageID: sent.messageID)
        // A late answer is not a desync (issue 10): past the deadline the request is resent with the same request ID
        // (the agent answers a request it already executed from its journal, and a second answer is recognised as a
        // duplicate), and the channel is drained only after `resends` unanswered resends.
        var current = envelope
        var currentExpiry = expiresAt
        // Measured on the monotonic clock from here: the wall clock only says how much of the delivery deadline is
        // left, bounded by the delivery timeout, so a wall-clock jump can neither stretch nor skip the wait.
        var wait = Self.remaining(until: expiresAt, now: sentAt, atMost: max(delivery, configuration.requestTimeout))
            + .seconds(executionSeconds)
        var resends = 0
        while true {
            do {
                let response = try await awaitResponse(to: requestID, for: wait, syncing: syncing)
                remember(requestID)
                BackendMetrics.recordRoundTrip(command: command.name, since: started)
                return response
            } catch let error as BackendError where error.code == .timeout {
                guard let decision = Self.onSilence(resendsSoFar: resends, policy: silencePolicy) else {
                    guard drainOnSilence else {
                        // Its answer, should it come, is a duplicate rather than a desync.
                        remember(requestID)
                        throw BackendError(
                            .timeout,
                            "no response to \(command.name) \(requestID) on channel \(channel) from an unreachable "
                                + "server; not drained")
                    }
                    try await drain(
                        ChannelDesyncDetected(
                            channel: channel, epoch: epoch, reason: "unanswered", expectedRequestID: requestID))
                    throw BackendError(
                        .timeout,
                        "no response to \(command.name) \(requestID) on channel \(channel) within \(delivery) + "
                            + "\(executionSeconds)s and \(resends) resend(s); the channel was drained")
                }
                resends += 1
                wait = decision
                // A resend is a new message (the agent refuses a copy of one it received as a replay); the journal
                // answers it by its request ID.
                current.sentAt = Date()
                if command.isReadOnly {
                    // Harmless to execute late: the resend may be executed by an agent that never had the original.
                    current.sentAt = configuration.clock.now()
                    currentExpiry = current.sentAt.addingTimeInterval(delivery.seconds)
                    current.expiresAt = Self.agentTime(currentExpiry, skewMilliseconds: skew.current)
                    wait += delivery
                }
                logger.info(
                    "request unanswered by its deadline: resending it with the same request ID",
                    metadata: ["channel": "\(channel)", "request.id": "\(requestID)", "resend": "\(resends)"])
                // Addressed anew: a silent agent may have been replaced meanwhile.
                addressed = address.current
                current.instance = addressed
                let dedup = "\(requestID)-\(epoch)-\(sequence)-r\(resends)-\(UInt32.random(in: 0...UInt32.max))"
                let signedResend = try await sign(current)
                let resent = try await recordingFailure("send") {
                    try await self.requests.send(
                        signedResend, groupID: "channel-\(channel.index)", deduplicationID: dedup)
                }
                try await recordSent(current, expiresAt: currentExpiry, command: command, taskID: taskID, messageID: resent.messageID)
            }
        }
    }

    /// The request as it goes on the queue, signed with the backend's current key (docs/protocol.md).
    private func sign(_ envelope: RequestEnvelope) async throws -> String {
        guard let keys = configuration.keys else {
            throw BackendError(.invalidArgument, "the backend has no signing key: requests cannot be sent")
        }
        return WireCoding.encodeSigned(envelope, with: try await keys.signingKey())
    }

    /// Whether a response is signed by the key pinned for the agent (re-read from the log once when not).
    private func verify(_ body: String) async throws -> MessageSigning.Verdict {
        guard let keys = configuration.keys else { return .badSignature }
        let cached = MessageSigning.verify(
            body, context: .response, trusting: try await keys.agentKeys(for: channel.server, refresh: false))
        if case .valid = cached { return cached }
        return MessageSigning.verify(
            body, context: .response, trusting: try await keys.agentKeys(for: channel.server, refresh: true))
    }

    /// How a channel treats silence: how long to wait after each resend, and how many resends before the channel is
    /// drained.
    struct SilencePolicy: Sendable, Equatable {
        /// The wait for an answer after each resend.
        var resendWait: Duration
        /// Resends before silence counts as a desync.
        var resends: Int
    }

    var silencePolicy: SilencePolicy {
        SilencePolicy(
            resendWait: configuration.heartbeatTimeout, resends: max(0, configuration.missedHeartbeatsForUnreachable - 1))
    }

    /// The rule for a request unanswered by its deadline: resend it and wait `resendWait` more, `resends` times,
    /// then give up (`nil`: the channel is drained). Pure.
    static func onSilence(resendsSoFar: Int, policy: SilencePolicy) -> Duration? {
        resendsSoFar < policy.resends ? policy.resendWait : nil
    }

    private func remember(_ requestID: RequestID) {
        answered.append(requestID)
        if answered.count > Self.answeredMemory { answered.removeFirst(answered.count - Self.answeredMemory) }
    }

    /// A backend-time deadline in the agent's time, given the measured skew (agent minus backend). Pure.
    static func agentTime(_ deadline: Date, skewMilliseconds: Int64) -> Date {
        deadline.addingTimeInterval(Double(skewMilliseconds) / 1000)
    }

    /// What is left of a delivery deadline at `now`, between zero and `atMost`. Pure.
    static func remaining(until deadline: Date, now: Date, atMost: Duration) -> Duration {
        let left = Duration.milliseconds(Int64((deadline.timeIntervalSince(now) * 1000).rounded(.down)))
        return min(atMost, max(.zero, left))
    }

    /// Records a send; `expiresAt` is the delivery deadline in the backend's time.
    private func recordSent(
        _ envelope: RequestEnvelope, expiresAt: Date, command: Command, taskID: TaskID?, messageID: String
    ) async throws {
        try await log.append(
            .requestSent(
                RequestSent(
                    channel: channel, requestID: envelope.requestID, epoch: envelope.epoch, sequence: envelope.sequence,
                    command: command.name, taskID: taskID, expiresAt: expiresAt,
                    executionSeconds: envelope.executionSeconds, messageID: messageID)),
            metadata: EventMetadata(actor: "backend", correlationID: envelope.requestID.rawValue))
    }

    /// Receives until the response to `requestID` of the current epoch arrives.
    ///
    /// - Parameter syncing: While a `sync` is outstanding, responses of an older epoch are stale leftovers of the
    ///   drain and are discarded (logged as rejected) instead of starting another drain.
    private func awaitResponse(to requestID: RequestID, for wait: Duration, syncing: Bool) async throws
        -> ResponseEnvelope
    {
        let deadline = ContinuousClock.now + wait
        while ContinuousClock.now < deadline {
            try Task.checkCancellation()
            let slice = min(deadline - ContinuousClock.now, .seconds(20))
            let messages = try await recordingFailure("receive") {
                try await self.responses.receive(maxMessages: 10, waitTime: slice, visibilityTimeout: .seconds(10))
            }
            var matched: ResponseEnvelope?
            var desync: ChannelDesyncDetected?
            for message in messages {
                switch try await classify(message, expecting: requestID, syncing: syncing) {
                case .matched(let response): matched = response
                case .skipped: break
                case .desync(let detected): desync = desync ?? detected
                }
            }
            if let desync {
                try await drain(desync)
                throw BackendError(
                    .desync,
                    "channel \(channel) fell out of sync (\(desync.reason)); it was drained and moves to epoch \(epoch)")
            }
            if let matched { return matched }
        }
        throw BackendError(.timeout, "no response to \(requestID) on channel \(channel) within \(wait)")
    }

    private enum Classified {
        case matched(ResponseEnvelope)
        case skipped
        case desync(ChannelDesyncDetected)
    }

    /// Records and deletes one response message, and says what it was.
    private func classify(_ message: ReceivedMessage, expecting requestID: RequestID, syncing: Bool) async throws
        -> Classified
    {
        let meta = EventMetadata(actor: "agent:\(channel.server)", correlationID: requestID.rawValue)
        let prefix = String(decoding: message.body.utf8.prefix(200), as: UTF8.self)
        let response: ResponseEnvelope
        switch try await verify(message.body) {
        case .valid: break
        case .unsigned, .badSignature:
            // Not the agent's: never read as an answer, whatever it claims.
            logger.warning("response not signed by the agent's pinned key", metadata: ["channel": "\(channel)"])
            try await reject(message, reason: "badSignature", requestID: nil, prefix: prefix, meta: meta)
            return .skipped
        }
        do {
            response = try WireCoding.decodeResponse(message.body)
        } catch {
            // Garbage carries no request ID or epoch to compare: it is discarded, never read as an answer.
            logger.warning("malformed response", metadata: ["channel": "\(channel)", "error": "\(error)"])
            try await reject(
                message, reason: "malformed", requestID: WireCoding.salvageRequestID(message.body), prefix: prefix,
                meta: meta)
            return .skipped
        }
        if response.requestID == nil, case .error(let refusal) = response.body,
            refusal.code == .unauthenticated || refusal.code == .replayed
        {
            // The agent refused a message on its request queue that this backend did not sign, or a copy of one it
            // received before: a forgery or a replay by someone with queue access. Recorded; not an answer.
            logger.warning(
                "the agent refused a forged or replayed request",
                metadata: ["channel": "\(channel)", "code": "\(refusal.code)", "reason": "\(refusal.message)"])
            try await reject(message, reason: "refused:\(refusal.code)", requestID: nil, prefix: prefix, meta: meta)
            return .skipped
        }
        let fencedNotice: Bool
        if case .error(let refusal) = response.body, refusal.code == .fenced { fencedNotice = true } else { fencedNotice = false }
        let matches = response.requestID == requestID && response.epoch == epoch
        if fencedNotice || (matches && response.instance != nil && response.instance != address.known) {
            // Who answered decides whether the answer counts (issue 16: one agent per server).
            switch Decide.responder(
                known: address.known, addressed: addressed, responder: response.instance, fencedNotice: fencedNotice)
            {
            case .accept:
                break
            case .adopt(let instance, let reason):
                let previous = address.known
                // Once, whichever channel decides first; the others then see the instance as known.
                guard address.adopt(instance, replacing: previous) else { break }
                try await log.append(
                    .agentInstance(
                        .changed(
                            AgentInstanceChanged(serverID: channel.server, instance: instance, previous: previous, reason: reason))),
                    metadata: meta)
                logger.notice(
                    "the server's agent is a new instance",
                    metadata: ["server": "\(channel.server)", "instance": "\(instance)", "reason": "\(reason)"])
            case .fence(let reason):
                try await log.append(
                    .agentInstance(
                        .fenced(
                            AgentInstanceFenced(
                                serverID: channel.server, known: address.known, fenced: response.instance,
                                channel: channel.index, reason: reason))),
                    metadata: meta)
                logger.error(
                    "a second agent answered for this server; its answer is refused",
                    metadata: ["server": "\(channel.server)", "reason": "\(reason)"])
                try await reject(message, reason: "fenced", requestID: response.requestID, prefix: prefix, meta: meta)
                return .skipped
            }
        }
        if matches {
            // Only the answer awaited now: a leftover may have waited in the queue, and would read as skew.
            skew.observe(agentTime: response.agentTime, receivedAt: configuration.clock.now())
            // Recorded and deleted together, whatever cancels the caller (a backend stopping): a response recorded but
            // left on the queue would come back after its visibility timeout and block the message group meanwhile.
            let received = ResponseReceived(
                channel: channel, requestID: requestID, epoch: epoch, status: response.body.status,
                message: Self.errorMessage(response.body), agentTime: response.agentTime, messageID: message.messageID)
            let (log, responses) = (self.log, self.responses)
            try await Task {
                try await log.append(.responseReceived(received), metadata: meta)
                try await responses.delete(receiptHandle: message.receiptHandle)
            }.value
            if case .error(let refusal) = response.body, refusal.code == .staleEpoch {
                // The agent's channel is at a newer epoch than ours (our state was restored from an older log, or a
                // message claimed a newer epoch): resynchronise above it.
                floor = max(floor, refusal.epoch ?? epoch)
                return .desync(
                    ChannelDesyncDetected(
                        channel: channel, epoch: epoch, reason: "agentAhead", expectedRequestID: requestID,
                        receivedRequestID: response.requestID, receivedEpoch: refusal.epoch,
                        messageID: message.messageID))
            }
            return .matched(response)
        }
        if response.epoch == epoch, let answeredID = response.requestID, answered.contains(answeredID) {
            // A second answer to a request already answered (a resend answered from the journal): not a desync.
            try await reject(message, reason: "duplicate", requestID: answeredID, prefix: prefix, meta: meta)
            return .skipped
        }
        let reason = response.epoch < epoch ? "staleEpoch" : "unexpectedRequestID"
        try await reject(message, reason: reason, requestID: response.requestID, prefix: prefix, meta: meta)
        if syncing && response.epoch < epoch { return .skipped }
        return .desync(
            ChannelDesyncDetected(
                channel: channel, epoch: epoch, reason: reason, expectedRequestID: requestID,
                receivedRequestID: response.requestID, receivedEpoch: response.epoch, messageID: message.messageID))
    }

    private func reject(
        _ message: ReceivedMessage, reason: String, requestID: RequestID?, prefix: String, meta: EventMetadata
    ) async throws {
        try await log.append(
            .responseRejected(
                ResponseRejected(
                    channel: channel, messageID: message.messageID, reason: reason, requestID: requestID,
                    bodyPrefix: prefix)),
            metadata: meta)
        try await responses.delete(receiptHandle: message.receiptHandle)
    }

    /// The queue drain: records the desync, empties both queues by receive-and-delete, moves to the next epoch and
    /// records every drained message. The next request is preceded by `sync`.
    private func drain(_ desync: ChannelDesyncDetected) async throws {
        logger.warning(
            "channel out of sync: draining its queues",
            metadata: ["channel": "\(channel)", "reason": "\(desync.reason)", "epoch": "\(epoch)"])
        try await log.append(
            .channelDesyncDetected(desync),
            metadata: EventMetadata(actor: "backend", correlationID: desync.expectedRequestID?.rawValue))
        let drainedRequests = try await empty(requests)
        let drainedResponses = try await empty(responses)
        let from = epoch
        epoch = max(epoch, floor) + 1
        answered.removeAll()
        try await log.append(
            .channelQueuesDrained(
                ChannelQueuesDrained(
                    channel: channel, fromEpoch: from, toEpoch: epoch, requests: drainedRequests,
                    responses: drainedResponses)),
            metadata: EventMetadata(actor: "backend", correlationID: desync.expectedRequestID?.rawValue))
        pendingSync = desync.reason
    }

    /// Receives and deletes until two receives in a row come back empty (the second waits a second, since a short
    /// SQS receive samples only some of the queue's servers).
    private func empty(_ queue: any MessageQueue) async throws -> [DrainedMessage] {
        var drained: [DrainedMessage] = []
        var empties = 0
        while empties < 2 {
            let wait: Duration = empties == 0 ? .zero : .seconds(1)
            let messages = try await recordingFailure("drain") {
                try await queue.receive(maxMessages: 10, waitTime: wait, visibilityTimeout: .seconds(30))
            }
            if messages.isEmpty {
                empties += 1
                continue
            }
            empties = 0
            for message in messages {
                try await recordingFailure("drain") { try await queue.delete(receiptHandle: message.receiptHandle) }
                drained.append(DrainedMessage(messageID: message.messageID, summary: Self.summary(message.body)))
            }
        }
        return drained
    }

    /// One line about a drained message: its kind, request ID and epoch, or that it was malformed.
    static func summary(_ body: String) -> String {
        if let request = try? WireCoding.decodeRequest(body) {
            return "request \(request.command.name) \(request.requestID) epoch \(request.epoch)"
        }
        if let response = try? WireCoding.decodeResponse(body) {
            return "response \(response.body.status) \(response.requestID?.rawValue ?? "-") epoch \(response.epoch)"
        }
        return "malformed: " + String(decoding: body.utf8.prefix(60), as: UTF8.self)
    }

    /// Runs a queue operation; a ``QueueError`` is recorded as `channel.transport-failed` (best effort) and rethrown.
    private func recordingFailure<T: Sendable>(_ operation: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as QueueError {
            logger.warning(
                "queue operation failed",
                metadata: ["channel": "\(channel)", "operation": "\(operation)", "error": "\(error)"])
            try? await log.append(
                .transportFailed(
                    TransportFailed(channel: channel, operation: operation, code: "\(error.code)", message: error.message)),
                metadata: EventMetadata(actor: "backend"))
            throw error
        }
    }

    static func errorMessage(_ body: ResponseBody) -> String? {
        if case .error(let error) = body { return error.message }
        return nil
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// An error of the backend's own.
public struct BackendError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String { case timeout, desync, unknownServer, unknownTask, invalidArgument }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// No matching response before the request's deadline.
        public static var timeout: Self { .init(.timeout) }
        /// A mismatched response made the channel drain; the request may be resent with the same request ID.
        public static var desync: Self { .init(.desync) }
        /// The server is not attached.
        public static var unknownServer: Self { .init(.unknownServer) }
        /// No task has that ID.
        public static var unknownTask: Self { .init(.unknownTask) }
        /// An operator argument is out of range.
        public static var invalidArgument: Self { .init(.invalidArgument) }
        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
