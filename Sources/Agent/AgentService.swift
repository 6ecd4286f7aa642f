import Domain
import EventStore
import FileSignals
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Transport
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// The agent daemon: opens its journal, takes inventory, then polls every channel's request queue concurrently,
/// executing each request at most once and answering on the channel's response queue.
///
/// It only dials out to its queues and opens no listening socket. Graceful shutdown stops receiving, lets running
/// tasks finish within ``AgentConfiguration/drainDeadlineSeconds``, then stops them.
public struct AgentService: Service {
    let configuration: AgentConfiguration
    let queues: [(requests: any MessageQueue, responses: any MessageQueue)]
    let logger: Logger

    /// - Parameters:
    ///   - configuration: The agent's settings.
    ///   - queues: The request and response queue of each channel, index = channel number.
    ///   - logger: The agent's logger.
    public init(
        configuration: AgentConfiguration, queues: [(requests: any MessageQueue, responses: any MessageQueue)],
        logger: Logger
    ) {
        self.configuration = configuration
        self.queues = queues
        self.logger = logger
    }

    public func run() async throws {
        // Only the agent's user may use its workspace: its key, its journal and the tasks' files are in it.
        try FileManager.default.createDirectory(
            atPath: configuration.workspace, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // 1. Open the journal.
        let journal = try AgentJournal(path: configuration.journalPath, serverID: configuration.serverID)
        let runtime = configuration.runtime.makeRuntime(
            scope: configuration.serverID.rawValue, workspace: configuration.workspace,
            useCgroups: configuration.useCgroups, cgroupScope: configuration.cgroupScope, logger: logger)
        // 2. Take inventory before executing anything.
        // This process's instance, known to later lives of the agent in this workspace.
        let workspace = try WorkspaceIdentity.current(configuration.workspace)
        let identity = AgentIdentity(earlier: try await journal.instances(in: workspace))
        try await journal.recordInstance(identity.instance, workspace: workspace)
        let tasks = AgentTasks(
            journal: journal, runtime: runtime, configuration: configuration, instance: identity.instance)
        try await tasks.loadInventory()
        let known = await tasks.count
        logger.info(
            "agent ready",
            metadata: [
                "server": "\(configuration.serverID)", "channels": "\(queues.count)", "instance": "\(identity.instance)",
                "runtime": "\(runtime.summary)", "tasks.known": "\(known)",
            ])
        let handler = RequestHandler(
            configuration: configuration, journal: journal, tasks: tasks, runtime: runtime,
            epochs: try await ChannelEpochs(journal: journal), requestGuard: try RequestGuard(source: configuration.backendKeys),
            identity: identity, logger: logger)
        let deadline = Duration.seconds(configuration.drainDeadlineSeconds)
        /// Which child task ended: only the end of polling (graceful shutdown) starts the drain.
        enum Child { case runtime, polling }
        try await withThrowingTaskGroup(of: Child.self) { group in
            group.addTask {
                await runtime.run { report in await tasks.ended(report) }
                return .runtime
            }
            // Attempts started by an earlier life of this agent that still run were adopted by the runtime in
            // loadInventory(): it supervises them and reports their end through the same onExit.
            // 3. Only then poll the channels, concurrently; graceful shutdown stops the polling.
            group.addTask {
                try await cancelWhenGracefulShutdown {
                    try await withThrowingDiscardingTaskGroup { channels in
                        for (index, pair) in queues.enumerated() {
                            channels.addTask {
                                try await Self.poll(
                                    channel: index, pair: pair, handler: handler, wait: configuration.pollWait,
                                    logger: logger)
                            }
                        }
                    }
                }
                return .polling
            }
            // The polling task ends at shutdown; then drain running tasks within the deadline. An adopted process
            // ending first is not a shutdown.
            while let child = try await group.next(), child != .polling {}
            let drainEnd = ContinuousClock.now + deadline
            await Self.awaitNoneRunning(runtime, tasks: tasks, until: drainEnd)
            if await runtime.runningCount > 0 {
                logger.warning("drain deadline passed, stopping running tasks")
                await runtime.killAll()
                await Self.awaitNoneRunning(runtime, tasks: tasks, until: nil)
            }
            runtime.finish()
            // Watchers of adopted processes stop watching; those processes, in sessions of their own, keep running
            // and are adopted again by the next start.
            group.cancelAll()
            while try await group.next() != nil {}
        }
        logger.info("agent stopped")
    }

    /// Waits, woken by each recorded end, until no attempt runs or `until` passes (`nil`: no limit).
    static func awaitNoneRunning(_ runtime: any TaskRuntime, tasks: AgentTasks, until: ContinuousClock.Instant?) async {
        while true {
            let generation = tasks.changes.generation
            if await runtime.runningCount == 0 { return }
            let left = until.map { $0 - ContinuousClock.now } ?? .seconds(3600)
            if left <= .zero { return }
            await tasks.changes.wait(after: generation, timeout: left)
        }
    }

    /// How long a received request stays invisible to other receivers while this agent holds it; extended every
    /// half of it while the request runs.
    static let visibility = Duration.seconds(6)

    static func poll(
        channel: Int, pair: (requests: any MessageQueue, responses: any MessageQueue), handler: RequestHandler,
        wait: Duration, logger: Logger
    ) async throws(AgentFenced) {
        let visibility = Self.visibility
        var backoff = Duration.milliseconds(200)
        while !Task.isCancelled {
            do {
                // A short visibility timeout, extended while the request runs: if this agent dies mid-request, the
                // message (and, on a FIFO queue, its whole message group) is blocked for seconds, not the queue's 30.
                let messages = try await pair.requests.receive(
                    maxMessages: 1, waitTime: wait, visibilityTimeout: visibility)
                for message in messages {
                    let accepted = Mutex(false)
                    let extender = Task {
                        while !Task.isCancelled {
                            try await Task.sleep(for: visibility / 2)
                            if accepted.withLock({ $0 }) { return }
                            try await pair.requests.changeVisibility(
                                receiptHandle: message.receiptHandle, timeout: visibility)
                        }
                    }
                    // A blocking query (a heartbeat that may be held for its wait) has no side effect: its message is
                    // deleted as soon as it is accepted, so holding it costs no visibility extensions and never blocks
                    // the message group; if this agent dies meanwhile, the backend resends it.
                    let response = await handler.handle(message.body, channel: channel) {
                        extender.cancel()
                        if (try? await pair.requests.delete(receiptHandle: message.receiptHandle)) != nil {
                            accepted.withLock { $0 = true }
                        }
                    }
                    extender.cancel()
                    if let response, case .error(let refusal) = response.body, refusal.code == .fenced {
                        // Released at once for the agent it is addressed to, and a notice for the backend under a
                        // deduplication ID of its own: the other agent's answer, sent for the same (redelivered)
                        // message, must not be taken for a duplicate of this notice.
                        try? await pair.requests.changeVisibility(receiptHandle: message.receiptHandle, timeout: .zero)
                        _ = try? await pair.responses.send(
                            WireCoding.encodeSigned(response, with: handler.configuration.signingKey), groupID: "channel-\(channel)",
                            deduplicationID: "fenced-" + message.messageID)
                        throw AgentFenced(description: refusal.message)
                    }
                    if let response {
                        Failpoint.crash(at: "agent.before-respond")
                        let body = WireCoding.encodeSigned(response, with: handler.configuration.signingKey)
                        // Per delivered message: a redelivery of the same message (the agent died before deleting
                        // it) dedups to the response already sent; a resend (a new message with the same request
                        // ID) gets the recorded response again.
                        let dedup = "resp-" + message.messageID
                        _ = try await pair.responses.send(body, groupID: "channel-\(channel)", deduplicationID: dedup)
                    }
                    // Deleted only after the outcome is journaled and the response is sent: a crash before this
                    // redelivers the request, which the journal then answers without executing it again.
                    if response != nil, !accepted.withLock({ $0 }) {
                        try await pair.requests.delete(receiptHandle: message.receiptHandle)
                    }
                }
                backoff = .milliseconds(200)
            } catch is CancellationError {
                return
            } catch let fenced as AgentFenced {
                throw fenced
            } catch {
                if Task.isCancelled { return }
                logger.error("channel poll failed", metadata: ["channel": "\(channel)", "error": "\(error)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(10))
            }
        }
    }
}

extension TaskStatusReport {
    /// The output paths kept in the `touchstone.outputs` label (newline-separated), for adopted attempts.
    var outputPaths: [String] {
        (labels["touchstone.outputs"] ?? "").split(separator: "\n").map(String.init)
    }
}

/// What the agent knows of its task attempts: the journal's reports, kept in memory, with a version that moves on
/// every change so that a blocking heartbeat query is answered the moment a task starts or ends.
actor AgentTasks {
    let journal: AgentJournal
    let runtime: any TaskRuntime
    private var reports: [TaskAttempt: TaskStatusReport] = [:] {
        didSet { changed() }
    }

    let configuration: AgentConfiguration
    /// This agent process's identity in state versions: a restarted agent never matches an older `since`.
    let instance: String
    /// Bumped on every change of ``reports`` or of the attempts being started.
    private var counter: UInt64 = 0
    /// The counter value at each attempt's last change, for the "changed since" part of a heartbeat reply.
    private var changedAt: [TaskAttempt: UInt64] = [:]
    /// Woken on every change (blocking queries and ``awaitReport(_:)`` wait on it).
    nonisolated let changes = ChangeSignal()

    init(journal: AgentJournal, runtime: any TaskRuntime, configuration: AgentConfiguration, instance: String = UUID().uuidString.lowercased()) {
        self.journal = journal
        self.runtime = runtime
        self.configuration = configuration
        self.instance = instance
    }

    /// The version of the task state: `<instance>/<counter>` (``HeartbeatReply/stateVersion``).
    var stateVersion: String { "\(instance)/\(counter)" }

    private func changed() {
        counter &+= 1
        changes.bump()
    }

    private func touch(_ key: TaskAttempt) {
        changedAt[key] = counter &+ 1
    }

    /// Waits until the state moves past `since` or `timeout` passes (a blocking query's wait). Returns at once when
    /// `since` is not the current version (another instance, or something changed already).
    func waitForChange(after since: String, timeout: Duration) async {
        let generation = changes.generation
        guard since == stateVersion else { return }
        await changes.wait(after: generation, timeout: timeout)
    }

    /// What a heartbeat reply carries: every running attempt, and every report changed after `since` (all reports
    /// when `since` is `nil` or another instance's).
    func heartbeatReports(since: String?) -> (reports: [TaskStatusReport], version: String) {
        var after: UInt64?
        if let since, let slash = since.lastIndex(of: "/"), since[..<slash] == instance {
            after = UInt64(since[since.index(after: slash)...])
        }
        let selected = reports.values.filter { report in
            guard let after else { return true }
            return report.state == .running || (changedAt[report.key] ?? 0) > after
        }
        return (selected.sorted { $0.key < $1.key }, stateVersion)
    }

    var count: Int { reports.count }

    /// Loads the journal, then asks the runtime about every attempt journaled as running: one that still runs (the
    /// agent was restarted) is adopted, supervised from now on; one that ended meanwhile gets its final report (from
    /// its exit-code file or its container). Labelled attempts the runtime finds but the journal lacks (the agent died
    /// between starting one and journaling it) are adopted too.
    ///
    /// - Throws: When the journal cannot be read or the runtime cannot be asked (Docker unreachable): the agent must
    ///   not start without knowing what runs.
    func loadInventory() async throws {
        let (journaled, launching) = try await journal.attempts()
        reports = journaled
        for key in journaled.keys { touch(key) }
        let found = try await runtime.inventory()
        let foundKeys = Set(found.map(\.key))
        // A launch journaled without its outcome (the agent stopped in between): the runtime's inventory finds the
        // attempt by its labels if it was launched, and it is adopted below; otherwise it is resolved here. It is
        // never launched a second time.
        for key in launching {
            if foundKeys.contains(key) {
                reports[key] = nil
            } else {
                try await resolveLaunch(key)
            }
        }
        for (key, report) in reports where report.state == .running {
            let now = try await runtime.adopt(report)
            guard now.state != .running else { continue }
            touch(key)
            reports[key] = now
            try await journal.record(now)
        }
        for found in found where reports[found.key] == nil {
            let now = try await runtime.adopt(found)
            touch(found.key)
            reports[found.key] = now
            try await journal.record(now)
        }
    }

    /// An attempt whose launch was journaled but not its outcome, and which the runtime does not find: an exit-code
    /// file means it ran and ended; without one it never started (or left no trace) and is reported as failed to
    /// start, which the backend retries as an infrastructure failure.
    private func resolveLaunch(_ key: TaskAttempt) async throws {
        guard var report = reports[key] else { return }
        let directory = report.labels["touchstone.directory"] ?? configuration.taskDirectory(key)
        if let text = try? String(contentsOfFile: directory + "/exit-code", encoding: .utf8),
            let code = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
        {
            report.state = .exited
            report.exitCode = code
            report.endedAt = Date()
            report.reason = code == 0 ? nil : "exit code \(code)"
            report.outputs = Workspace.collectOutputs(report.outputPaths, in: directory + "/work")
        } else {
            report.state = .failedToStart
            report.endedAt = Date()
            report.reason = "the agent stopped while launching the attempt; no process of it was found"
        }
        touch(key)
        reports[key] = report
        try await journal.record(report)
    }

    /// Gives up a reservation whose launch was not attempted.
    func release(_ key: TaskAttempt) {
        starting.remove(key)
        startingGPUs[key] = nil
        changes.bump()
    }

    func report(for key: TaskAttempt) -> TaskStatusReport? { reports[key] }

    private var starting: Set<TaskAttempt> = []
    /// The GPU indices of each attempt being started, held from its reservation.
    private var startingGPUs: [TaskAttempt: [Int]] = [:]
    /// The capacity of the newest booking seen (``CapacityGuard/newest(_:_:)``); in memory: every start carries one.
    private var knownCapacity: CapacityView?

    /// A stop of an attempt this agent neither has nor is starting: a tombstone is recorded (state `stopped`, never
    /// started), so a start of it arriving later is answered with the tombstone and never runs (issue 17 part 2; the
    /// channel model's counterexample 1). `nil` when the attempt is known or being started.
    func tombstoneIfUnknown(_ key: TaskAttempt) async -> TaskStatusReport? {
        guard reports[key] == nil, !starting.contains(key) else { return nil }
        let tombstone = TaskStatusReport(
            taskID: key.taskID, attempt: key.attempt, state: .stopped, endedAt: Date(),
            reason: "stopped before it started: a start of this attempt will not run")
        touch(key)
        reports[key] = tombstone
        try? await journal.record(tombstone)
        return tombstone
    }

    /// Whether a request is starting the attempt now (reserved, not yet recorded).
    func isStarting(_ key: TaskAttempt) -> Bool { starting.contains(key) }

    /// The outcome of ``reserve(_:gpus:capacity:)``.
    enum Reservation: Equatable {
        /// This request may launch the attempt.
        case reserved
        /// The attempt is known, or another request is starting it.
        case taken
        /// The capacity guard refused it (``CapacityGuard``): the message says why.
        case refused(String)
    }

    /// Claims the right to start an attempt, atomically with the capacity guard: the attempts that run or are being
    /// launched, and the GPUs they hold, are counted against the last known capacity (issue 17 part 1).
    func reserve(_ key: TaskAttempt, gpus: [Int] = [], capacity: CapacityView? = nil) -> Reservation {
        guard reports[key] == nil, !starting.contains(key) else { return .taken }
        knownCapacity = CapacityGuard.newest(knownCapacity, capacity)
        var held = startingGPUs
        for report in reports.values where report.state == .running {
            held[report.key] = CapacityGuard.gpus(inLabels: report.labels)
        }
        if case .refuse(let message) = CapacityGuard.admit(gpus: gpus, known: knownCapacity, held: held) {
            return .refused(message)
        }
        starting.insert(key)
        startingGPUs[key] = gpus
        return .reserved
    }

    /// Waits until an attempt another request is starting has a report (woken by the change that records it).
    func awaitReport(_ key: TaskAttempt) async -> TaskStatusReport? {
        while starting.contains(key), !Task.isCancelled {
            let generation = changes.generation
            await changes.wait(after: generation, timeout: .seconds(60))
        }
        return reports[key]
    }

    var all: [TaskStatusReport] { reports.values.sorted { $0.key < $1.key } }

    /// Records a start (or a failure to start).
    func started(_ report: TaskStatusReport) async throws {
        defer {
            starting.remove(report.key)
            startingGPUs[report.key] = nil
            changes.bump()
        }
        if let existing = reports[report.key], existing.state != .running, report.state == .running {
            // The process already ended before the start was recorded: keep the end.
            return
        }
        touch(report.key)
        reports[report.key] = report
        try await journal.record(report)
    }

    /// Records an end reported by the runtime.
    func ended(_ report: TaskStatusReport) async {
        var report = report
        let directory = report.labels["touchstone.directory"] ?? configuration.taskDirectory(report.key)
        report.logBytes = Dictionary(
            uniqueKeysWithValues: LogStream.allCases.map { stream in
                let attributes = try? FileManager.default.attributesOfItem(atPath: directory + "/" + stream.fileName)
                return (stream.rawValue, (attributes?[.size] as? NSNumber)?.int64Value ?? 0)
            })
        touch(report.key)
        reports[report.key] = report
        do {
            try await journal.record(report)
        } catch {
            // The in-memory report still answers listTasks; the next restart re-reads the exit file.
        }
    }
}
