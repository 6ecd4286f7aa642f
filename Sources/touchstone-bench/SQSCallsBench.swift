import Agent
import Domain
import EventStore
import Foundation
import Logging
import Orchestrator
import Projections
import Transport
import Wire

/// Row 12: SQS API calls for one idle server, counted by our client, extrapolated to a day, with what they cost.
///
/// The server is attached with the `touchstone server attach` binary (queues and dead-letter queues on ministack).
/// The backend (``Backend``) and the agent (``AgentService``) then run in this process with their default settings,
/// each over its own ``SQSClient`` wrapped in a ``CallCounter`` (in-process so that the counts can be read). After the
/// hello and `settle`, the calls made during `window` are counted.
enum SQSCallsBench {
    /// AWS's price of SQS FIFO requests: $0.50 per million (first 100 billion requests a month; the free tier's first
    /// million ignored), https://aws.amazon.com/sqs/pricing/ (read 2026-12). Every API action is one request per
    /// 64 KiB chunk of payload; the idle calls here are all below 64 KiB.
    static let dollarsPerMillionRequests = 0.50

    static func run(
        cluster: Cluster, configuration: SQSConfiguration, window: Duration, settle: Duration, smoke: Bool
    ) async throws -> [BenchRow] {
        let server = ServerID(rawValue: "bench-01")!
        try await cluster.attach(server.rawValue, maxTasks: 1)
        let counter = CallCounter()
        var quiet = Logger(label: "touchstone.bench.sqs")
        quiet.logLevel = .error
        let backendQueues = CountingQueueProvider(
            base: try SQSClient(configuration: configuration, logger: quiet), counter: counter, side: "backend")
        let agentQueues = CountingQueueProvider(
            base: try SQSClient(configuration: configuration, logger: quiet), counter: counter, side: "agent")
        var backendConfiguration = BackendConfiguration(queuePrefix: cluster.queuePrefix)
        backendConfiguration.keys = try BackendKeys(stateDirectory: cluster.state, log: cluster.log)
        let backend = Backend(log: cluster.log, queues: backendQueues, configuration: backendConfiguration, logger: quiet)
        var agentConfiguration = AgentConfiguration(
            serverID: server, queuePath: "", queuePrefix: cluster.queuePrefix,
            workspace: cluster.directory + "/agents/\(server)")
        // The keys and policy `touchstone-agent` would set up; the agent's key is pinned as `server attach
        // --agent-key` pins it.
        let keys = KeyDirectory(stateDirectory: cluster.state)
        try FileManager.default.createDirectory(atPath: agentConfiguration.workspace, withIntermediateDirectories: true)
        agentConfiguration.signingKey = try KeyFiles.loadOrCreate(agentConfiguration.keyPath)
        agentConfiguration.backendKeys = BackendKeySource(files: [keys.trusted])
        agentConfiguration.policy = RunPolicy(allowProcessRuntime: true, allowRoot: true)
        let agentKey = try String(contentsOfFile: agentConfiguration.keyPath + ".pub", encoding: .utf8)
        try await cluster.log.append(
            .keys(.agentKeyPinned(AgentKeyPinned(serverID: server, publicKey: agentKey.trimmingCharacters(in: .whitespacesAndNewlines), source: "operator"))),
            metadata: EventMetadata(actor: "operator:bench"))
        var channels: [(requests: any MessageQueue, responses: any MessageQueue)] = []
        for index in 0..<agentConfiguration.channels {
            let channel = ChannelID(server: server, index: index)
            channels.append(
                (
                    try await agentQueues.openQueue(
                        named: ChannelQueues.requestQueue(prefix: cluster.queuePrefix, channel: channel)),
                    try await agentQueues.openQueue(
                        named: ChannelQueues.responseQueue(prefix: cluster.queuePrefix, channel: channel))
                ))
        }
        let agent = AgentService(configuration: agentConfiguration, queues: channels, logger: quiet)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await backend.run() }
            group.addTask { try await agent.run() }
            defer { group.cancelAll() }
            try await cluster.waitForHello([server.rawValue], timeout: .seconds(60))
            try await Task.sleep(for: settle)
            let clock = ContinuousClock()
            let before = counter.snapshot
            let start = clock.now
            try await Task.sleep(for: window)
            let elapsed = (clock.now - start).inSeconds
            let after = counter.snapshot
            var delta: [String: Int] = [:]
            for (key, count) in after where count - (before[key] ?? 0) > 0 { delta[key] = count - (before[key] ?? 0) }
            let calls = delta.values.reduce(0, +)
            let perDay = Double(calls) / elapsed * 86_400
            let monthly = perDay * 30 * dollarsPerMillionRequests / 1_000_000
            let breakdown = delta.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            return [
                BenchRow(
                    row: 12, metric: "SQS API calls per idle server per day (backend + agent, counted by our client)",
                    value: perDay, unit: "calls/day", goal: "<= 30,000/day", met: smoke ? nil : perDay <= 30_000,
                    note: "\(calls) calls in \(String(format: "%.0f", elapsed)) s × 86,400 s/day"
                        + String(format: " = $%.2f a month at $0.50 per million FIFO requests; ", monthly)
                        + (breakdown.isEmpty ? "no calls" : breakdown)),
                BenchRow(
                    row: 12, metric: "SQS cost per idle server per month (30 days, FIFO requests)", value: monthly,
                    unit: "USD/month", goal: "<= 0.45 USD", met: smoke ? nil : monthly <= 0.45,
                    note: "https://aws.amazon.com/sqs/pricing/: $0.50 per million FIFO requests"),
            ]
        }
    }
}
