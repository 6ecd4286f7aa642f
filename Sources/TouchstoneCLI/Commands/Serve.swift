import ArgumentParser
import Foundation
import EventStore
import FileSignals
import Transport
import Projections
import Domain
import Logging
import Orchestrator
import ServiceLifecycle
import UnixSignals

/// `touchstone serve`: runs the backend until SIGTERM or SIGINT.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the backend: schedule queued tasks and dispatch them to the attached servers' agents.")

    @OptionGroup(title: "Backend options") var settings: BackendOptions

    @OptionGroup(title: "Transport options") var transportOptions: TransportOptions

    @OptionGroup var global: GlobalOptions

    /// One backend per state directory: a second `serve` refuses to start (an exclusive `flock` on
    /// `backend.lock`, held until the process exits, even if it is killed).
    static func lockStateDirectory(_ directory: String) throws {
        let path = directory + "/backend.lock"
        do {
            try PIDLockFile.acquire(path)
        } catch {
            switch error {
            case .held(let pid):
                throw CLIError("another backend (pid \(pid.map(String.init) ?? "?")) is already serving \(directory)")
            case .cannotOpen(let reason):
                throw CLIError("cannot open \(path): \(reason)")
            }
        }
    }

    func validate() throws {
        guard PackingPolicy(rawValue: settings.packing) != nil else { throw ValidationError("--packing is pack or spread") }
        guard settings.heartbeatTimeout > 0, settings.missedHeartbeats >= 1, settings.lostAfter >= 0, settings.maxAttempts >= 1 else {
            throw ValidationError("--heartbeat-timeout, --missed-heartbeats, --lost-after and --max-attempts must be positive")
        }
        guard settings.statusInterval > 0, settings.statusInterval <= 3600 else {
            throw ValidationError("--status-interval must be in (0, 3600] seconds")
        }
        guard settings.maxClockSkew > 0, settings.maxClockSkew <= 86_400 else {
            throw ValidationError("--max-clock-skew must be in (0, 86400] seconds")
        }
        guard settings.maxTransferBytes >= 0 else { throw ValidationError("--max-transfer-bytes must be 0 or more") }
        guard settings.requestTimeout >= 1, settings.requestTimeout <= 3600 else {
            throw ValidationError("--request-timeout must be 1–3600 seconds")
        }
        guard settings.executionTimeout >= 1, settings.executionTimeout <= 3600 else {
            throw ValidationError("--execution-timeout must be 1–3600 seconds")
        }
    }

    func run() async throws {
        let log = try global.openLog(create: true)
        try Self.lockStateDirectory(global.resolvedStateDir)
        let logger = Logger(label: "touchstone.backend")
        let queues = try transportOptions.openQueues(queuePath: global.queuePath, logger: logger)
        var configuration = BackendConfiguration(
            queuePrefix: transportOptions.queuePrefix, statusInterval: .milliseconds(Int(settings.statusInterval * 1000)),
            requestTimeout: .seconds(settings.requestTimeout), heartbeatTimeout: .milliseconds(Int(settings.heartbeatTimeout * 1000)),
            missedHeartbeatsForUnreachable: settings.missedHeartbeats, lostAfter: .seconds(settings.lostAfter), maxAttempts: settings.maxAttempts,
            stopGraceSeconds: settings.stopGrace, packing: PackingPolicy(rawValue: settings.packing)!)
        configuration.executionSeconds = settings.executionTimeout
        configuration.maxClockSkew = .milliseconds(Int64(settings.maxClockSkew * 1000))
        configuration.transfers = TransferSettings(
            stateDirectory: global.resolvedStateDir, maxFileBytes: settings.maxTransferBytes,
            requestTimeout: .seconds(settings.requestTimeout))
        try await KeysSupport.initialize(global: global, log: log)
        do {
            configuration.keys = try BackendKeys(stateDirectory: global.resolvedStateDir, log: log)
        } catch {
            throw CLIError("\(error)")
        }
        let backend = Backend(log: log, queues: queues, configuration: configuration, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [backend], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let transport = try transportOptions.queueTransport(queuePath: global.queuePath).summary
        logger.info(
            "backend starting", metadata: ["state": "\(global.resolvedStateDir)", "transport": "\(transport)"])
        let pid = getpid()
        try await log.append(
            .backend(.started(BackendStarted(pid: pid, version: TouchstoneVersion.current))),
            metadata: EventMetadata(actor: "backend"))
        do {
            try await group.run()
        } catch {
            _ = try? await log.append(
                .backend(.stopped(BackendStopped(pid: pid, reason: "error: \(error)"))),
                metadata: EventMetadata(actor: "backend"))
            throw error
        }
        // A clean stop (SIGTERM or SIGINT): recorded, so that `server list` and `task submit` can say since when no
        // backend runs, and the next start knows its predecessor left nothing half-done on purpose.
        try await log.append(
            .backend(.stopped(BackendStopped(pid: pid, reason: "SIGTERM or SIGINT"))),
            metadata: EventMetadata(actor: "backend"))
        logger.notice("backend stopped", metadata: ["state": "\(global.resolvedStateDir)", "pid": "\(pid)"])
    }
}

/// `serve`'s own options, shown first in its `--help`.
struct BackendOptions: ParsableArguments {
    @Option(help: "Seconds an idle server's blocking heartbeat query is held before the agent answers (task starts and ends are answered at once); the longest an idle server goes without contact.")
    var statusInterval: Double = 30

    @Option(help: "Delivery deadline: seconds a request stays valid for the agent (it never executes an expired one).")
    var requestTimeout: Int = 60

    @Option(help: "Execution deadline: seconds a delivered start, listing or sync may take before its response is due; a stop adds its grace period. An unanswered request drains the channel.")
    var executionTimeout: Int = 10

    @Option(help: "Seconds of grace for an answer past a request's deadline, and the wait after each resend of it with the same request ID (a late answer is not a desync).")
    var heartbeatTimeout: Double = 10

    @Option(help: "Unanswered sends of one request (the first and its resends) after which the channel is drained and the server is unreachable.")
    var missedHeartbeats: Int = 3

    @Option(help: "Seconds a server may stay unreachable before its tasks are lost and requeued.")
    var lostAfter: Int = 300

    @Option(help: "Attempts a task gets before an infrastructure failure is final.")
    var maxAttempts: Int = 3

    @Option(help: "Seconds between SIGTERM and SIGKILL when a drain deadline stops a task.")
    var stopGrace: Int = 10

    @Option(help: "How to choose among servers that fit: pack (fill busy servers first) or spread.")
    var packing: String = "pack"

    @Option(help: "The largest file put to or got from an agent, in bytes (checked before sending).")
    var maxTransferBytes: Int64 = 10 << 30

    @Option(help: "Seconds an agent's clock may differ from the backend's; past it the server is unhealthy (clock skew) and gets no new tasks, its running tasks are left alone.")
    var maxClockSkew: Double = 30
}
