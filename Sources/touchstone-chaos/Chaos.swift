import ArgumentParser
import Domain
import EventStore
import Foundation
import Logging
import Projections
import Transport
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// `touchstone-chaos` (run through `tools/chaos`): a workload over real `touchstone serve` and `touchstone-agent`
/// processes, with `kill -9`s of the backend or a random agent at random moments and transport faults injected into
/// the channels' queues; then invariants 1–7 of DESIGN.md checked against the log and the agents' real processes.
///
/// It prints one summary line, `kills=N tasks=N lost=0 doubled=0 over_capacity=0 rebuild_equal=true chain_ok=true
/// in_sync=true`, and exits 1 when an invariant fails.
@main
struct Chaos: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "touchstone-chaos",
        abstract: "Kill the backend and agents at random while a workload runs, inject transport faults, and check the invariants.")

    @Option(help: "kill -9s to perform (the backend or a random agent, at random moments).")
    var kills: Int = 10

    @Option(help: "Short tasks in the workload.")
    var tasks: Int = 60

    @Option(help: "Agents (servers gpu-01, gpu-02, …).")
    var agents: Int = 3

    @Option(help: "max_tasks of every server.")
    var maxTasks: Int = 2

    @Option(help: "The queue transport: embedded or sqs (then pass --sqs-endpoint, and credentials in the environment).")
    var transport: String = "embedded"

    @Option(help: "An SQS endpoint URL (sqs transport).")
    var sqsEndpoint: String?

    @Option(help: "The SQS region (sqs transport).")
    var sqsRegion: String = "us-east-1"

    @Option(help: "Transport faults injected per kill interval on average (duplicates, delays past the visibility timeout, stale-epoch and malformed messages); 0 disables them.")
    var faultRate: Double = 1

    @Option(help: "Queue pairs per server (channel 0 is control): with more than 2, starts and stops travel on different channels.")
    var channels: Int = 4

    @Option(help: "Clock faults per kill interval on average: an agent's clock offset for a few seconds (inside or past serve's 30 s skew tolerance), or the backend's wall clock jumping a year forward or back and returning; 0 disables them.")
    var clockFaultRate: Double = 0.3

    @Option(help: "Share of agent kills that kill the agent together with its tasks (as a host reboot does).")
    var withTasksRate: Double = 0.3

    @Option(help: "Random seed (default: random; printed).")
    var seed: UInt64?

    @Option(help: "Where the run keeps its state, logs and the tasks' record (default: a new temporary directory).")
    var stateDir: String?

    @Option(help: "Give up after this many seconds.")
    var timeout: Int = 1500

    @Flag(help: "Keep the state directory after a passing run.")
    var keep = false

    func validate() throws {
        guard channels >= 2, channels <= 16 else { throw ValidationError("--channels must be 2–16") }
        guard kills >= 0, tasks >= 1, agents >= 1, maxTasks >= 1 else {
            throw ValidationError("--kills must be ≥ 0, --tasks, --agents and --max-tasks ≥ 1")
        }
        guard transport == "embedded" || (transport == "sqs" && sqsEndpoint != nil) else {
            throw ValidationError("--transport is embedded, or sqs with --sqs-endpoint")
        }
    }

    func run() async throws {
        let seed = seed ?? UInt64.random(in: 0...UInt64.max)
        var random = SplitMix(seed: seed)
        let directory = stateDir ?? (NSTemporaryDirectory() + "touchstone-chaos-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(atPath: directory + "/state", withIntermediateDirectories: true)
        let prefix = "chaos\(seed % 1_000_000)"
        let run = try ChaosRun(
            directory: directory, binaries: Self.binDirectory(), agents: agents, maxTasks: maxTasks,
            transportArguments: transport == "sqs"
                ? ["--transport", "sqs", "--sqs-endpoint", sqsEndpoint!, "--sqs-region", sqsRegion, "--queue-prefix", prefix]
                : ["--transport", "embedded", "--queue-prefix", prefix],
            queuePrefix: prefix, channels: channels)
        print(
            "chaos: seed=\(seed) state=\(directory) transport=\(transport) kills=\(kills) tasks=\(tasks) channels=\(channels)")
        let queues = try QueueTransport.fromSettings(
            transport: transport, queuePath: directory + "/state/queues.db", region: sqsRegion, endpoint: sqsEndpoint
        ).makeProvider(logger: Logger(label: "chaos"))
        try await run.prepare(tasks: tasks, queues: queues)
        do {
            try await drive(run, queues: queues, prefix: prefix, directory: directory, seed: seed, random: &random)
        } catch {
            // Never leave a backend or agents behind.
            await run.stopAll()
            throw error
        }
    }

    private func drive(
        _ run: ChaosRun, queues: any QueueProvider, prefix: String, directory: String, seed: UInt64,
        random: inout SplitMix
    ) async throws {
        try run.startBackend()
        for index in 1...agents { try run.startAgent(index) }

        let faults = FaultInjector(
            queues: queues, prefix: prefix, servers: run.servers, channels: channels, pause: { run.pause($0, $1) },
            signResponse: { response in
                WireCoding.encodeSigned(
                    response, with: try KeyFiles.loadPrivate(run.directory + "/agents/\(response.server)/agent.key"))
            })
        let sampler = ProcessSampler(directory: directory, maxTasks: maxTasks)
        let sampling = Task { await sampler.run() }
        let deadline = ContinuousClock.now + .seconds(timeout)
        var done = 0
        var killed = 0
        var clockFaults: [String: Int] = [:]
        var killedWithTasks = 0
        while ContinuousClock.now < deadline {
            let snapshot = try await run.log.snapshot()
            done = snapshot.tasks.rows.values.filter { $0.status.isTerminal }.count
            if killed >= kills, done == tasks { break }
            try await Task.sleep(for: .milliseconds(Int64(random.next(in: 300...2_500))))
            if faultRate > 0, random.unit() < min(1, faultRate) {
                await faults.injectOne(&random)
            }
            if clockFaultRate > 0, random.unit() < min(1, clockFaultRate) {
                // A clock that lies for a few seconds, then is put right.
                let backend = random.unit() < 0.3
                let name = backend ? "backend" : "agent-\(random.next(in: 1...agents))"
                let sign: Double = random.unit() < 0.5 ? -1 : 1
                let offset = backend ? sign * 365 * 86_400 : sign * Double(random.next(in: 0...1) == 0 ? random.next(in: 1...20) : random.next(in: 40...600))
                run.setClock(name, offset: offset)
                clockFaults[backend ? "backend" : "agent", default: 0] += 1
                try await Task.sleep(for: .milliseconds(Int64(random.next(in: 1_000...5_000))))
                run.setClock(name, offset: 0)
            }
            guard killed < kills else { continue }
            killed += 1
            let victim = random.next(in: 0...agents)
            if victim == 0 {
                run.killBackend()
                try await Task.sleep(for: .milliseconds(Int64(random.next(in: 0...1_000))))
                try run.startBackend()
            } else if random.unit() < withTasksRate {
                killedWithTasks += run.killAgentWithTasks(victim) > 0 ? 1 : 0
                try await Task.sleep(for: .milliseconds(Int64(random.next(in: 0...1_000))))
                try run.startAgent(victim)
            } else {
                run.killAgent(victim)
                try await Task.sleep(for: .milliseconds(Int64(random.next(in: 0...1_000))))
                try run.startAgent(victim)
            }
        }
        for name in ["backend"] + (1...agents).map({ "agent-\($0)" }) { run.setClock(name, offset: 0) }
        // Quiesce: every task ended; give the backend a few heartbeats to settle every channel.
        try await Task.sleep(for: .seconds(3))
        sampling.cancel()
        let overCapacitySamples = await sampler.overCapacity
        let report = try await Invariants.check(run: run, tasks: tasks, realOverCapacity: overCapacitySamples)
        await run.stopAll()
        let summary =
            "kills=\(killed) tasks=\(tasks) lost=\(report.lost) doubled=\(report.doubled) "
            + "over_capacity=\(report.overCapacity) rebuild_equal=\(report.rebuildEqual) chain_ok=\(report.chainOK) "
            + "in_sync=\(report.inSync)"
        for line in report.details { print("chaos: \(line)") }
        print(
            "chaos: faults=\(await faults.summary) clock=agent:\(clockFaults["agent"] ?? 0),"
                + "backend:\(clockFaults["backend"] ?? 0) killed_with_tasks=\(killedWithTasks) desyncs=\(report.desyncs) "
                + "drains=\(report.drains) cleanups=\(report.cleanups) events=\(report.events)")
        print(summary)
        if !report.passed {
            print("chaos: FAILED; state kept in \(directory) (seed \(seed))")
            throw ExitCode(1)
        }
        if !keep && stateDir == nil { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// The directory of this executable: `touchstone` and `touchstone-agent` are built next to it.
    static func binDirectory() -> String {
        let path = CommandLine.arguments[0]
        let resolved = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return (resolved as NSString).deletingLastPathComponent
    }
}

/// A small seeded generator (SplitMix64), so a failing run can be repeated with `--seed`.
struct SplitMix {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func next(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
