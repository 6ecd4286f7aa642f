import Foundation
import Logging
import Synchronization
import Testing
import Transport

/// An SQS-compatible server that `tools/test` started on loopback, read from the environment.
///
/// - `TOUCHSTONE_SQS_ENDPOINT`, `TOUCHSTONE_SQS_ACCESS_KEY_ID`, `TOUCHSTONE_SQS_SECRET_ACCESS_KEY`: ministack with
///   `AUTH=true`, and the key of an IAM user that `tools/test` created there.
/// - `TOUCHSTONE_MOTO_ENDPOINT`: moto_server (it accepts any key).
/// - `TOUCHSTONE_REQUIRE_SQS=1` (set by `tools/test`): a missing endpoint fails the tests instead of skipping them.
struct SQSTestServer: Sendable {
    let name: String
    let endpoint: String
    let credentials: AWSCredentials
    let region = "us-east-1"

    static let environment = ProcessInfo.processInfo.environment
    /// True under `tools/test`: nothing may be skipped.
    static let required = environment["TOUCHSTONE_REQUIRE_SQS"] == "1"

    static let ministack: SQSTestServer? = {
        guard let endpoint = environment["TOUCHSTONE_SQS_ENDPOINT"], !endpoint.isEmpty,
            let key = environment["TOUCHSTONE_SQS_ACCESS_KEY_ID"], let secret = environment["TOUCHSTONE_SQS_SECRET_ACCESS_KEY"]
        else { return nil }
        return SQSTestServer(
            name: "ministack", endpoint: endpoint,
            credentials: AWSCredentials(accessKeyID: key, secretAccessKey: secret))
    }()

    static let moto: SQSTestServer? = {
        guard let endpoint = environment["TOUCHSTONE_MOTO_ENDPOINT"], !endpoint.isEmpty else { return nil }
        return SQSTestServer(
            name: "moto", endpoint: endpoint, credentials: AWSCredentials(accessKeyID: "testing", secretAccessKey: "testing"))
    }()

    /// The HTML 503 server `tools/test` starts (`TOUCHSTONE_HTML503_ENDPOINT`).
    static let html503Endpoint = environment["TOUCHSTONE_HTML503_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 }

    /// Whether the ministack suites run: when its endpoint is set, or when `tools/test` requires it (then a missing
    /// endpoint fails in ``requireMinistack()``).
    static let ministackEnabled = ministack != nil || required
    /// The same for moto.
    static let motoEnabled = moto != nil || required

    /// The ministack server, or a failure naming the missing variable.
    static func requireMinistack() throws -> SQSTestServer {
        try #require(
            ministack, "TOUCHSTONE_SQS_ENDPOINT and its key are not set, but TOUCHSTONE_REQUIRE_SQS=1: run tools/test")
    }

    /// The moto server, or a failure naming the missing variable.
    static func requireMoto() throws -> SQSTestServer {
        try #require(moto, "TOUCHSTONE_MOTO_ENDPOINT is not set, but TOUCHSTONE_REQUIRE_SQS=1: run tools/test")
    }

    /// A client of this server.
    func client(
        credentials: AWSCredentials? = nil, retry: SQSRetryPolicy = .init(), endpoint: String? = nil
    ) throws -> SQSClient {
        try SQSClient(
            configuration: SQSConfiguration(
                region: region, endpoint: endpoint ?? self.endpoint, credentials: credentials ?? self.credentials,
                retry: retry),
            logger: Logger(label: "touchstone.transport.tests"))
    }

    /// A new queue name, unique across test runs against the same server.
    static func uniqueQueueName(_ stem: String = "ts-test") -> String {
        "\(stem)-\(UUID().uuidString.prefix(18).lowercased())-\(counter.add(1, ordering: .relaxed).newValue).fifo"
    }

    private static let counter = Atomic<Int>(0)

    /// The conformance suite on this server: each check gets fresh queues (with dead-letter queues, as production
    /// creates them); time passes by sleeping.
    func conformance() throws -> MessageQueueConformance {
        let client = try client()
        return MessageQueueConformance(
            makeQueue: { attributes in
                let name = Self.uniqueQueueName()
                try await client.createQueue(named: name, attributes: attributes)
                return try await client.queue(named: name)
            },
            advanceTime: { duration in try await Task.sleep(for: duration) })
    }
}
