import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOPosix
import Operations
import Orchestrator
import Projections
import Prometheus
import ServiceLifecycle

/// `serve --metrics-listen HOST:PORT`: Prometheus text (exposition format 0.0.4) at `GET /metrics`, on a loopback
/// address only, served with SwiftNIO's HTTP/1.1 server. Each scrape first refreshes the gauges read from the log
/// (``BackendMetrics/recordSnapshot(_:)``); counters and histograms are recorded as things happen.
struct MetricsEndpoint: Service {
    let address: LoopbackAddress
    let registry: PrometheusCollectorRegistry
    let log: TouchstoneLog
    let logger: Logger

    /// Bootstraps swift-metrics with a Prometheus factory (once per process) and makes the endpoint.
    static func bootstrap(address: LoopbackAddress, log: TouchstoneLog, logger: Logger) throws -> MetricsEndpoint {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Seconds to hours: a task waits and runs for minutes to days; a request's round trip takes milliseconds.
        let long: [Duration] = [1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 72 * 3600].map { .seconds($0) }
        factory.durationHistogramBuckets[BackendMetrics.Name.submitToStart] = long
        factory.durationHistogramBuckets[BackendMetrics.Name.taskDuration] = long
        MetricsSystem.bootstrap(factory)
        return MetricsEndpoint(address: address, registry: registry, log: log, logger: logger)
    }

    /// The text of one scrape.
    func scrape() async -> String {
        do {
            BackendMetrics.recordSnapshot(try await BackendMetrics.Snapshot.read(log))
        } catch {
            logger.warning("metrics: reading the log failed", metadata: ["error": "\(error)"])
        }
        return registry.emitToString()
    }

    func run() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: address.host, port: address.port) { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                        wrappingChannelSynchronously: child)
                }
            }
        logger.info(
            "metrics listening",
            metadata: ["address": "\(address.host):\(server.channel.localAddress?.port ?? address.port)"])
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { connections in
                    for try await connection in connections {
                        group.addTask { await self.serve(connection) }
                    }
                }
            }
        } onGracefulShutdown: {
            server.channel.close(promise: nil)
        }
    }

    /// Answers each request of one connection, then closes it.
    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                for try await part in inbound {
                    switch part {
                    case .head(let request): head = request
                    case .body: continue
                    case .end:
                        guard let request = head else { continue }
                        let (status, body) =
                            request.method == .GET && request.uri.split(separator: "?").first == "/metrics"
                            ? (HTTPResponseStatus.ok, await scrape())
                            : (.notFound, "not found: Touchstone serves GET /metrics\n")
                        var headers = HTTPHeaders()
                        headers.add(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
                        headers.add(name: "Content-Length", value: String(body.utf8.count))
                        headers.add(name: "Connection", value: "close")
                        try await outbound.write(.head(HTTPResponseHead(version: request.version, status: status, headers: headers)))
                        try await outbound.write(.body(.byteBuffer(ByteBuffer(string: body))))
                        try await outbound.write(.end(nil))
                        return
                    }
                }
            }
        } catch {
            logger.debug("metrics: connection ended", metadata: ["error": "\(error)"])
        }
    }
}
