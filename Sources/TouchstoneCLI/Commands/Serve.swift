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
import Operations

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

    /// The options given on this command line, by configuration key.
    var commandLineSettings: [String: String] {
        settings.commandLineSettings.merging(transportOptions.commandLineSettings(global: global)) { $1 }
    }

    func run() async throws {
        let resolved = try await transportOptions.resolveSettings(commandLine: commandLineSettings)
        resolved.bootstrapLogging()
        var global = self.global
        global.stateDir = resolved.text("stateDir")
        let log = try global.openLog(create: true)
        try Self.lockStateDirectory(global.resolvedStateDir)
        let logger = Logger(label: "touchstone.backend")
        let queues = try transportOptions.openQueues(settings: resolved, queuePath: global.queuePath, logger: logger)
        var configuration = BackendSettings.configuration(resolved, stateDirectory: global.resolvedStateDir)
        try await KeysSupport.initialize(global: global, log: log)
        do {
            configuration.keys = try BackendKeys(stateDirectory: global.resolvedStateDir, log: log)
        } catch {
            throw CLIError("\(error)")
        }
        let backend = Backend(log: log, queues: queues, configuration: configuration, logger: logger)
        var services: [any Service] = [backend]
        if let hours = resolved.integer("gc.intervalHours"), hours > 0 {
            services.append(
                RetentionService(
                    stateDirectory: global.resolvedStateDir, log: log,
                    policy: RetentionPolicy(days: resolved.integer("gc.retentionDays") ?? RetentionPolicy().days),
                    interval: .seconds(hours * 3600), clock: ContinuousClock(), logger: logger))
        }
        if let listen = resolved.text("metrics.listen"), let address = LoopbackAddress(listen) {
            let endpoint = try MetricsEndpoint.bootstrap(address: address, log: log, logger: logger)
            services.insert(contentsOf: [endpoint, LogMetrics(log: log, logger: logger)] as [any Service], at: 0)
        }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let transport = try transportOptions.queueTransport(settings: resolved, queuePath: global.queuePath).summary
        logger.info(
            "backend starting",
            metadata: [
                "state": "\(global.resolvedStateDir)", "transport": "\(transport)",
                "config": "\(resolved.file ?? "none")",
            ])
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

/// `serve`'s own options, shown first in its `--help`. None has a default here: every default is declared once,
/// in ``BackendSettings/keys``, and applies after the environment and the configuration file.
struct BackendOptions: ParsableArguments {
    @Option(help: BackendSettings.help("statusInterval")) var statusInterval: Double?
    @Option(help: BackendSettings.help("requestTimeout")) var requestTimeout: Int?
    @Option(help: BackendSettings.help("executionTimeout")) var executionTimeout: Int?
    @Option(help: BackendSettings.help("heartbeatTimeout")) var heartbeatTimeout: Double?
    @Option(help: BackendSettings.help("missedHeartbeats")) var missedHeartbeats: Int?
    @Option(help: BackendSettings.help("lostAfter")) var lostAfter: Int?
    @Option(help: BackendSettings.help("maxAttempts")) var maxAttempts: Int?
    @Option(help: BackendSettings.help("stopGrace")) var stopGrace: Int?
    @Option(help: BackendSettings.help("packing")) var packing: String?
    @Option(help: BackendSettings.help("maxTransferBytes")) var maxTransferBytes: Int64?
    @Option(help: BackendSettings.help("maxClockSkew")) var maxClockSkew: Double?
    @Option(help: BackendSettings.help("metrics.listen")) var metricsListen: String?
    @Option(help: BackendSettings.help("log.format")) var logFormat: String?
    @Option(help: BackendSettings.help("log.level")) var logLevel: String?

    /// The options given, by configuration key, as text (checked by the resolver like any other source's).
    var commandLineSettings: [String: String] {
        let given: [(String, (any CustomStringConvertible)?)] = [
            ("statusInterval", statusInterval), ("requestTimeout", requestTimeout),
            ("executionTimeout", executionTimeout), ("heartbeatTimeout", heartbeatTimeout),
            ("missedHeartbeats", missedHeartbeats), ("lostAfter", lostAfter), ("maxAttempts", maxAttempts),
            ("stopGrace", stopGrace), ("packing", packing), ("maxTransferBytes", maxTransferBytes), ("maxClockSkew", maxClockSkew),
            ("metrics.listen", metricsListen), ("log.format", logFormat), ("log.level", logLevel),
        ]
        return Dictionary(uniqueKeysWithValues: given.compactMap { key, value in value.map { (key, "\($0)") } })
    }
}
