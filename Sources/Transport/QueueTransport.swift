import Foundation
import Logging

/// Which transport the backend and the agents use: the embedded queue file or SQS FIFO.
public enum QueueTransport: Sendable {
    /// The embedded queue of one host: the queue path every process of the host gives (`<state-dir>/queues.db`,
    /// `--queue-path`); the queues live in one SQLite file per server next to it (``EmbeddedQueueLayout``).
    case embedded(path: String)
    /// SQS FIFO queues (production), or an SQS-compatible server by endpoint.
    case sqs(SQSConfiguration)

    /// The settings as the command lines give them (`--transport`, `--queue-path`, `--sqs-region`,
    /// `--sqs-endpoint`), each falling back to the environment.
    ///
    /// - Parameters:
    ///   - transport: `embedded` or `sqs`; else `TOUCHSTONE_TRANSPORT`; else `embedded`.
    ///   - queuePath: The embedded queue path (required for `embedded`; see ``EmbeddedQueueLayout``).
    ///   - region: The SQS region; else `TOUCHSTONE_SQS_REGION`, `AWS_REGION`, `AWS_DEFAULT_REGION` (required for
    ///     `sqs`).
    ///   - endpoint: An SQS endpoint URL; else `TOUCHSTONE_SQS_ENDPOINT`; else the region's.
    ///   - environment: The process environment; credentials come from it too
    ///     (``AWSCredentials/resolve(environment:)``).
    /// - Returns: The transport.
    /// - Throws: ``QueueError`` `.invalidParameter` for an unknown transport or a missing region or path;
    ///   `.missingCredentials` for SQS without credentials.
    public static func fromSettings(
        transport: String?, queuePath: String?, region: String?, endpoint: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(QueueError) -> QueueTransport {
        func nonEmpty(_ value: String?) -> String? { value.flatMap { $0.isEmpty ? nil : $0 } }
        switch nonEmpty(transport) ?? nonEmpty(environment["TOUCHSTONE_TRANSPORT"]) ?? "embedded" {
        case "embedded":
            guard let queuePath = nonEmpty(queuePath) else {
                throw QueueError(.invalidParameter, "the embedded transport needs a queue file path")
            }
            return .embedded(path: queuePath)
        case "sqs":
            guard
                let region = nonEmpty(region) ?? nonEmpty(environment["TOUCHSTONE_SQS_REGION"])
                    ?? nonEmpty(environment["AWS_REGION"]) ?? nonEmpty(environment["AWS_DEFAULT_REGION"])
            else {
                throw QueueError(
                    .invalidParameter,
                    "the sqs transport needs a region: pass --sqs-region or set AWS_REGION")
            }
            let credentials = try AWSCredentials.resolve(environment: environment)
            return .sqs(
                SQSConfiguration(
                    region: region, endpoint: nonEmpty(endpoint) ?? nonEmpty(environment["TOUCHSTONE_SQS_ENDPOINT"]),
                    credentials: credentials))
        case let other:
            throw QueueError(.invalidParameter, "unknown transport \(other): use embedded or sqs")
        }
    }

    /// Opens the transport's ``QueueProvider``.
    ///
    /// - Parameter logger: The SQS client's logger.
    /// - Returns: An ``EmbeddedQueueStore`` on the queue path, or an ``SQSClient``.
    /// - Throws: ``QueueError`` from opening the queue path (`.storage`, `.notAQueueDatabase`, `.invalidParameter`
    ///   for a directory) or a bad SQS endpoint.
    public func makeProvider(logger: Logger) throws(QueueError) -> any QueueProvider {
        switch self {
        case .embedded(let path): return try EmbeddedQueueStore(path: path)
        case .sqs(let configuration): return try SQSClient(configuration: configuration, logger: logger)
        }
    }

    /// `embedded <path>` or `sqs <region> <endpoint>`, without credentials.
    public var summary: String {
        switch self {
        case .embedded(let path): "embedded \(path)"
        case .sqs(let configuration):
            "sqs \(configuration.region) "
                + (configuration.endpoint ?? "https://sqs.\(configuration.region).amazonaws.com")
        }
    }
}
