import Domain
import EventStore
import Foundation
import Logging
import Orchestrator
import Projections
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing
import Transport
import Wire

/// A backend in this process and real `touchstone-agent` processes, sharing one log and one embedded queue file.
final class Cluster: Sendable {
    let directory = TemporaryDirectory("cluster")
    let log: TouchstoneLog
    let queues: EmbeddedQueueStore
    let configuration: BackendConfiguration
    private let agents = Mutex<[ServerID: ChildProcess]>([:])
    static let operatorMeta = EventMetadata(actor: "operator:test")

    init(configuration: BackendConfiguration = .init(
        statusInterval: .milliseconds(200), requestTimeout: .seconds(20),
        heartbeatTimeout: .seconds(2))) throws
    {
        log = try TouchstoneLog(path: directory.file("touchstone.db"))
        queues = try EmbeddedQueueStore(path: directory.file("queues.db"))
        var configuration = configuration
        if configuration.transfers.stateDirectory == nil {
            // The cluster's directory is the backend's state directory: inputs/, artifacts/, logs/.
            configuration.transfers.stateDirectory = directory.path
        }
        if configuration.keys == nil {
            // As `touchstone serve` does: the backend's key in its state directory (keys/), which co-located agents
            // trust by default.
            configuration.keys = try BackendKeys(stateDirectory: directory.path, log: log)
        }
        self.configuration = configuration
    }

    /// A raw request signed with the backend's key, as the backend sends it (for tests that inject messages).
    func signed(_ request: RequestEnvelope) throws -> String {
        WireCoding.encodeSigned(request, with: try TestKeys.backend(stateDirectory: directory.path))
    }

    /// A raw response signed with an agent's key (from its workspace), as that agent sends it.
    func signed(_ response: ResponseEnvelope, by server: ServerID) throws -> String {
        WireCoding.encodeSigned(response, with: try KeyFiles.loadPrivate(directory.file("agents/\(server)/agent.key")))
    }

    /// Attaches a server as `touchstone server attach` does: its queues first (an agent refuses to start without
    /// them), then the event.
    func attach(_ server: ServerID, maxTasks: Int, channels: Int = 3) async throws {
        for index in 0..<channels {
            let channel = ChannelID(server: server, index: index)
            for name in [
                ChannelQueues.requestQueue(prefix: configuration.queuePrefix, channel: channel),
                ChannelQueues.responseQueue(prefix: configuration.queuePrefix, channel: channel),
            ] {
                try await queues.createQueueIfNeeded(named: name, attributes: QueueAttributes())
            }
        }
        try await log.append(
            .serverAttached(ServerAttached(serverID: server, maxTasks: maxTasks, channels: channels)), metadata: Self.operatorMeta)
    }

    @discardableResult
    func submit(_ id: String, _ command: String, gpus: Int = 0, outputs: [String] = [], priority: Int = 0) async throws -> TaskID {
        let task = TaskID(rawValue: id)
        try await log.append(
            .taskSubmitted(TaskSubmitted(taskID: task, spec: TaskSpec(name: id, command: ["/bin/sh", "-c", command], outputs: outputs, gpus: gpus, priority: priority))),
            expectedVersion: .noStream, metadata: Self.operatorMeta)
        return task
    }

    func startAgent(
        _ server: ServerID, channels: Int = 3, nvidiaSMI: String? = nil, environment: [String: String] = [:]
    ) throws {
        var arguments = [
            "--server", server.rawValue, "--queue-path", directory.file("queues.db"), "--workspace",
            directory.file("agents/\(server)"), "--poll-wait", "1", "--allow-process-runtime", "--allow-root", "--channels", "\(channels)", "--drain-deadline", "0",
        ]
        if let nvidiaSMI { arguments += ["--nvidia-smi", nvidiaSMI] }
        let agent = try ChildProcess(
            builtExecutable("touchstone-agent"), arguments, environment: environment, logDirectory: directory.path,
            name: "agent-\(server)")
        agents.withLock { $0[server] = agent }
    }

    /// SIGKILLs one agent (its tasks, in sessions of their own, keep running).
    func killAgent(_ server: ServerID) async {
        guard let agent = agents.withLock({ $0.removeValue(forKey: server) }) else { return }
        agent.signal(SIGKILL)
        await agent.wait(timeout: .seconds(10))
    }

    func agentLogs() -> String {
        agents.withLock { $0.map { "\($0.key):\n\($0.value.stderr)" }.joined(separator: "\n") }
    }

    /// Runs the backend (in a service group) while `body` runs, then shuts it and every agent down.
    func run<T: Sendable>(_ body: @escaping @Sendable (Cluster) async throws -> T) async throws -> T {
        let backend = Backend(log: log, queues: queues, configuration: configuration, logger: Logger(label: "test.backend"))
        let services = ServiceGroup(configuration: .init(services: [backend], logger: Logger(label: "test.group")))
        let result: T
        do {
            result = try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask {
                    try await services.run()
                    return nil
                }
                group.addTask { try await body(self) }
                var value: T?
                for try await outcome in group {
                    if let outcome { value = outcome }
                    await services.triggerGracefulShutdown()
                }
                return value!
            }
        } catch {
            await stopAgents()
            throw error
        }
        await stopAgents()
        return result
    }

    func stopAgents() async {
        let all = agents.withLock { Array($0.values) }
        for agent in all { agent.signal(SIGTERM) }
        for agent in all { await agent.wait(timeout: .seconds(20)) }
    }

    /// Polls the stored read models until `condition` holds, calling `check` on every snapshot on the way.
    ///
    /// - Throws: When `timeout` passes first, with the agents' logs.
    func waitUntil(
        timeout: Duration = .seconds(60), check: (ProjectionSet) -> Void = { _ in },
        _ condition: (ProjectionSet) -> Bool
    ) async throws -> ProjectionSet {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let snapshot = try await log.snapshot()
            check(snapshot)
            if condition(snapshot) { return snapshot }
            try await Task.sleep(for: .milliseconds(50))
        }
        let snapshot = try await log.snapshot()
        Issue.record("condition not met in \(timeout); tasks: \(snapshot.tasks.rows.values.map { "\($0.taskID) \($0.status) \($0.reason ?? "")" }); agents:\n\(agentLogs())")
        throw CancellationError()
    }

    /// Invariant 1 over the whole log: every booking was made while the server had a free slot and enough free
    /// GPUs, by replaying the log event by event.
    func verifyNoOverBooking() async throws {
        var set = ProjectionSet(position: 0, servers: .init(), tasks: .init(), channels: .init())
        for event in try await log.events(after: 0, limit: 100_000) {
            if case .taskDispatched(let booking) = event.event, let row = set.servers[booking.serverID] {
                #expect(row.booked.count < row.maxTasks, "position \(event.position): \(booking.serverID) booked \(row.booked.count) of max \(row.maxTasks)")
                #expect(row.state == .attached, "position \(event.position): booked on a \(row.state) server")
                for index in booking.gpuIndices ?? [] {
                    #expect(row.freeGPUs.contains(index), "position \(event.position): GPU \(index) of \(booking.serverID) was not free")
                }
            }
            set.apply(event)
        }
    }

    deinit { directory.remove() }
}
