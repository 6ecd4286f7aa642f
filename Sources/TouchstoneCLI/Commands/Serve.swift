import ArgumentParser
import Foundation
import EventStore
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

    @OptionGroup var global: GlobalOptions

    @Option(help: "Seconds between task status polls of each server.")
    var statusInterval: Double = 1

    @Option(help: "Seconds a request stays valid and the backend waits for its response.")
    var requestTimeout: Int = 60

    func validate() throws {
        guard statusInterval > 0, statusInterval <= 3600 else {
            throw ValidationError("--status-interval must be in (0, 3600] seconds")
        }
        guard requestTimeout >= 1, requestTimeout <= 3600 else {
            throw ValidationError("--request-timeout must be 1–3600 seconds")
        }
    }

    func run() async throws {
        let log = try global.openLog(create: true)
        let logger = Logger(label: "touchstone.backend")
        let queues = try global.openQueues(logger: logger)
        let configuration = BackendConfiguration(
            queuePrefix: global.queuePrefix, statusInterval: .milliseconds(Int(statusInterval * 1000)),
            requestTimeout: .seconds(requestTimeout))
        let backend = Backend(log: log, queues: queues, configuration: configuration, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [backend], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let transport = try global.queueTransport().summary
        logger.info(
            "backend starting", metadata: ["state": "\(global.resolvedStateDir)", "transport": "\(transport)"])
        try await group.run()
    }
}
