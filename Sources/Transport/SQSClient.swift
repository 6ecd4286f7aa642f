import FileSignals
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Where and as whom ``SQSClient`` talks to SQS.
public struct SQSConfiguration: Sendable {
    /// The AWS region, for example `eu-west-1`; it names the default endpoint and the SigV4 credential scope.
    public var region: String
    /// An endpoint URL that overrides `https://sqs.<region>.amazonaws.com` (an SQS-compatible server such as
    /// ministack: `http://127.0.0.1:4566`).
    public var endpoint: String?
    /// The key requests are signed with.
    public var credentials: AWSCredentials
    /// Retries of throttling, 5xx and connection errors.
    public var retry: SQSRetryPolicy
    /// How long one HTTP request may take, beyond a receive's long-poll wait. Default 30 s.
    public var requestTimeout: Duration
    /// `maxReceiveCount` of the redrive policy to the dead-letter queue: after this many receives without a delete a
    /// message moves there. 1–1,000 (SQS Developer Guide, "Using dead-letter queues"); default 10.
    public var maxReceiveCount: Int

    /// Creates a configuration.
    ///
    /// - Parameters:
    ///   - region: The AWS region.
    ///   - endpoint: An endpoint URL overriding the region's, or `nil`.
    ///   - credentials: The signing key.
    ///   - retry: Retries of transient failures; default 4 attempts with full jitter.
    ///   - requestTimeout: The time one request may take beyond a long poll; default 30 s.
    ///   - maxReceiveCount: Receives before a message moves to the dead-letter queue; default 10.
    public init(
        region: String, endpoint: String? = nil, credentials: AWSCredentials, retry: SQSRetryPolicy = .init(),
        requestTimeout: Duration = .seconds(30), maxReceiveCount: Int = 10
    ) {
        self.region = region
        self.endpoint = endpoint
        self.credentials = credentials
        self.retry = retry
        self.requestTimeout = requestTimeout
        self.maxReceiveCount = maxReceiveCount
    }
}

/// A client of the Amazon SQS JSON 1.0 protocol: queue administration, and the calls of ``SQSQueue``.
///
/// Every request is an HTTP `POST` to the endpoint with `X-Amz-Target: AmazonSQS.<Action>` and `Content-Type:
/// application/x-amz-json-1.0`, signed with SigV4 (``SigV4Signer``, service `sqs`). Errors are ``QueueError``s (see
/// `SQSErrorDecoder` for the mapping); throttling, 5xx and connection failures are retried per
/// ``SQSConfiguration/retry``; everything else fails at once. Requests honour task cancellation: a cancelled task's
/// request is abandoned at once and the call throws `CancellationError`.
public struct SQSClient: Sendable {
    /// The configuration the client was made with.
    public let configuration: SQSConfiguration
    let httpClient: HTTPClient
    let logger: Logger
    let signer: SigV4Signer
    let url: String
    let host: String
    let path: String
    let now: @Sendable () -> Date
    /// Every request this client (and its copies and queues) sent, by kind.
    let operations = QueueOperationCounter()
    /// The counter of the ``SQSQueue`` this copy of the client serves, if any.
    private(set) var queueOperations: QueueOperationCounter?

    /// Creates a client; it opens no connection until the first call.
    ///
    /// - Parameters:
    ///   - configuration: Region, endpoint, credentials and retries.
    ///   - httpClient: The HTTP client; default ``sharedHTTPClient``, which needs no shutdown.
    ///   - logger: Where requests that are retried or fail are logged (never with credentials).
    ///   - now: The signing clock; tests skew it to prove that a bad signature fails.
    /// - Throws: ``QueueError`` `.invalidParameter` when the endpoint is not an `http` or `https` URL with a host.
    public init(
        configuration: SQSConfiguration, httpClient: HTTPClient = SQSClient.sharedHTTPClient, logger: Logger,
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws(QueueError) {
        let endpoint = configuration.endpoint ?? "https://sqs.\(configuration.region).amazonaws.com"
        guard let components = URLComponents(string: endpoint), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
        else {
            throw QueueError(.invalidParameter, "SQS endpoint \(endpoint) is not an http or https URL with a host")
        }
        self.configuration = configuration
        self.httpClient = httpClient
        self.logger = logger
        self.now = now
        self.signer = SigV4Signer(credentials: configuration.credentials, region: configuration.region, service: "sqs")
        self.url = endpoint
        self.host = components.port.map { "\(host):\($0)" } ?? host
        self.path = components.path.isEmpty ? "/" : components.path
    }

    /// The process-wide HTTP client every ``SQSClient`` uses unless given another; like `HTTPClient.shared` it is
    /// never shut down.
    ///
    /// Connect timeout 5 s: a request waiting for a connection to a refused or unreachable endpoint fails within it
    /// (`.connectionFailed`, then retried), where `HTTPClient.shared`'s browser-like 90 s would hold it. No read
    /// timeout: each request has its own deadline, ``SQSConfiguration/requestTimeout`` plus a long poll's wait.
    public static let sharedHTTPClient = HTTPClient(
        eventLoopGroup: HTTPClient.defaultEventLoopGroup,
        configuration: HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5)), decompression: .disabled))

    // MARK: Queue administration

    /// Creates a FIFO queue and, first, its dead-letter queue, or returns the existing queue's URL.
    ///
    /// Both queues get `FifoQueue=true`, `ContentBasedDeduplication=false` and the given visibility timeout and
    /// maximum message size; the queue gets a `RedrivePolicy` to the dead-letter queue with
    /// ``SQSConfiguration/maxReceiveCount``. The dead-letter queue of `name-req.fifo` is `name-req-dlq.fifo` and
    /// keeps messages 14 days (`MessageRetentionPeriod` 1,209,600 s, the SQS maximum). `CreateQueue` is idempotent
    /// when the attributes match (SQS API reference, `CreateQueue`).
    ///
    /// - Parameters:
    ///   - name: The FIFO queue's name: 1–80 characters of letters, digits, `-` and `_`, ending in `.fifo`; with
    ///     `-dlq` added it must still fit in 80.
    ///   - attributes: Visibility timeout (whole seconds are sent) and maximum message size.
    ///   - deadLetterQueue: Whether to create the dead-letter queue and the redrive policy; default `true`.
    /// - Returns: The queue's URL.
    /// - Throws: ``QueueError`` `.invalidParameter`, `.queueNameExists` (exists with other attributes), and those of
    ///   any call (`.accessDenied`, `.invalidSignature`, …).
    @discardableResult
    public func createQueue(named name: String, attributes: QueueAttributes = .init(), deadLetterQueue: Bool = true)
        async throws -> String
    {
        try SQSLimits.validateQueueName(name)
        try SQSLimits.validate(attributes)
        var wanted: [String: String] = [
            "FifoQueue": "true", "ContentBasedDeduplication": "false",
            "VisibilityTimeout": String(Self.wholeSeconds(attributes.visibilityTimeout)),
            "MaximumMessageSize": String(attributes.maximumMessageSize),
        ]
        if deadLetterQueue {
            let dlqName = Self.deadLetterQueueName(for: name)
            try SQSLimits.validateQueueName(dlqName)
            var dlqAttributes = wanted
            dlqAttributes["MessageRetentionPeriod"] = "1209600"
            let dlq: QueueURLResponse = try await call(
                "CreateQueue", CreateQueueRequest(QueueName: dlqName, Attributes: dlqAttributes))
            let dlqAttributesRead = try await queueAttributes(url: dlq.QueueUrl, names: ["QueueArn"])
            guard let arn = dlqAttributesRead["QueueArn"] else {
                throw QueueError(.unexpectedResponse, "GetQueueAttributes of \(dlqName) returned no QueueArn")
            }
            wanted["RedrivePolicy"] =
                "{\"deadLetterTargetArn\":\"\(arn)\",\"maxReceiveCount\":\(configuration.maxReceiveCount)}"
        }
        let created: QueueURLResponse = try await call(
            "CreateQueue", CreateQueueRequest(QueueName: name, Attributes: wanted))
        return created.QueueUrl
    }

    /// The dead-letter queue's name of a FIFO queue: `-dlq` before `.fifo`.
    ///
    /// - Parameter name: A FIFO queue name such as `touchstone-gpu-01-0-req.fifo`.
    /// - Returns: For example `touchstone-gpu-01-0-req-dlq.fifo`.
    public static func deadLetterQueueName(for name: String) -> String {
        (name.hasSuffix(".fifo") ? String(name.dropLast(5)) : name) + "-dlq.fifo"
    }

    /// The URL of a queue (`GetQueueUrl`).
    ///
    /// - Parameter name: The queue's name.
    /// - Returns: The queue's URL.
    /// - Throws: ``QueueError`` `.queueDoesNotExist`, and those of any call.
    public func queueURL(named name: String) async throws -> String {
        let response: QueueURLResponse = try await call("GetQueueUrl", GetQueueURLRequest(QueueName: name))
        return response.QueueUrl
    }

    /// Attributes of a queue (`GetQueueAttributes`), as SQS gives them: strings.
    ///
    /// - Parameters:
    ///   - url: The queue's URL.
    ///   - names: The attribute names, default `All`.
    /// - Returns: The attributes by name.
    /// - Throws: ``QueueError`` `.queueDoesNotExist`, and those of any call.
    public func queueAttributes(url: String, names: [String] = ["All"]) async throws -> [String: String] {
        let response: GetQueueAttributesResponse = try await call(
            "GetQueueAttributes", GetQueueAttributesRequest(QueueUrl: url, AttributeNames: names))
        return response.Attributes ?? [:]
    }

    /// Deletes a queue (`DeleteQueue`). SQS may take up to 60 seconds to finish, and a queue of the same name cannot
    /// be created during that time (SQS API reference, `DeleteQueue`).
    ///
    /// - Parameter url: The queue's URL.
    /// - Throws: ``QueueError`` `.queueDoesNotExist`, and those of any call.
    public func deleteQueue(url: String) async throws {
        let _: EmptyResponse = try await call("DeleteQueue", QueueURLRequest(QueueUrl: url))
    }

    /// A handle to an existing queue: looks up its URL and its `MaximumMessageSize` (for client-side validation).
    ///
    /// - Parameter name: The queue's name.
    /// - Returns: The queue.
    /// - Throws: ``QueueError`` `.queueDoesNotExist`, and those of any call.
    public func queue(named name: String) async throws -> SQSQueue {
        let url = try await queueURL(named: name)
        let attributes = try await queueAttributes(url: url, names: ["MaximumMessageSize"])
        let size = attributes["MaximumMessageSize"].flatMap(Int.init) ?? SQSLimits.messageSizeRange.upperBound
        return SQSQueue(client: self, name: name, url: url, maximumMessageSize: size)
    }

    /// The requests sent to SQS by this client, its copies and its queues, by kind (each retry counts: SQS bills
    /// requests).
    public var operationCounts: QueueOperationCounts { operations.counts }

    /// A copy of this client that also counts its requests in `counter` (a queue handle's own counter).
    func counting(into counter: QueueOperationCounter) -> SQSClient {
        var copy = self
        copy.queueOperations = counter
        return copy
    }

    // MARK: Calls

    /// Calls one SQS action with retries and returns its decoded response.
    ///
    /// - Parameters:
    ///   - operation: The action, for example `SendMessage`.
    ///   - request: The JSON request.
    ///   - extraTime: Time the server may take on purpose (a long poll's wait), added to the request timeout.
    /// - Returns: The decoded response; an empty body decodes as `{}`.
    /// - Throws: ``QueueError``, or `CancellationError` when the task is cancelled.
    func call<Response: Decodable & Sendable>(
        _ operation: String, _ request: some Encodable, extraTime: Duration = .zero
    ) async throws -> Response {
        let body: [UInt8]
        do {
            body = Array(try JSONEncoder().encode(request))
        } catch {
            throw QueueError(.invalidParameter, "cannot encode the \(operation) request", underlying: error)
        }
        var generator = SystemRandomNumberGenerator()
        var attempt = 1
        while true {
            do {
                return try await attemptCall(operation, body: body, timeout: configuration.requestTimeout + extraTime)
            } catch let error as QueueError
                where SQSRetryPolicy.isRetryable(error.code) && attempt < configuration.retry.maximumAttempts
            {
                let delay = configuration.retry.delay(beforeRetry: attempt, using: &generator)
                logger.debug(
                    "SQS request failed; retrying",
                    metadata: [
                        "sqs.operation": "\(operation)", "sqs.attempt": "\(attempt)", "error": "\(error)",
                        "retry.delayMs": "\(delay.wholeMilliseconds)",
                    ])
                try await Task.sleep(for: delay)
                attempt += 1
            }
        }
    }

    private func attemptCall<Response: Decodable & Sendable>(_ operation: String, body: [UInt8], timeout: Duration)
        async throws -> Response
    {
        try Task.checkCancellation()
        let kind = QueueOperation.of(sqsAction: operation)
        operations.record(kind)
        queueOperations?.record(kind)
        var headers = [
            ("Host", host), ("Content-Type", "application/x-amz-json-1.0"), ("X-Amz-Target", "AmazonSQS.\(operation)"),
        ]
        headers += signer.signatureHeaders(method: "POST", path: path, headers: headers, body: body, date: now())
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))

        let status: Int
        let responseHeaders: HTTPHeaders
        let bytes: [UInt8]
        do {
            let response = try await httpClient.execute(
                request, timeout: .milliseconds(timeout.wholeMilliseconds), logger: nil)
            status = Int(response.status.code)
            responseHeaders = response.headers
            // 10 messages of 1 MiB each, every byte possibly escaped as \uXXXX in JSON, stays under 64 MiB.
            bytes = Array(buffer: try await response.body.collect(upTo: 64 << 20))
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw QueueError(
                .connectionFailed, "SQS \(operation) to \(url) failed: \(Self.describe(error))", underlying: error)
        }
        guard (200..<300).contains(status) else {
            let error = SQSErrorDecoder.decode(
                status: status, queryError: responseHeaders.first(name: "x-amzn-query-error"),
                contentType: responseHeaders.first(name: "content-type"), body: bytes, operation: operation)
            if !SQSRetryPolicy.isRetryable(error.code) {
                logger.debug(
                    "SQS request refused", metadata: ["sqs.operation": "\(operation)", "error": "\(error)"])
            }
            throw error
        }
        return try SQSResponseDecoder.decode(Response.self, body: bytes, status: status, operation: operation)
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError { return "\(error)" }
        return String(describing: error)
    }

    /// Whole seconds, rounded up (SQS takes integer seconds).
    static func wholeSeconds(_ duration: Duration) -> Int64 {
        let milliseconds = duration.wholeMilliseconds
        return milliseconds <= 0 ? 0 : (milliseconds + 999) / 1_000
    }
}

// MARK: Wire shapes (SQS API reference, JSON protocol; names as in the API)

struct EmptyResponse: Decodable, Sendable {}

struct QueueURLResponse: Decodable, Sendable {
    var QueueUrl: String
}

struct CreateQueueRequest: Encodable {
    var QueueName: String
    var Attributes: [String: String]
}

struct GetQueueURLRequest: Encodable {
    var QueueName: String
}

struct QueueURLRequest: Encodable {
    var QueueUrl: String
}

struct GetQueueAttributesRequest: Encodable {
    var QueueUrl: String
    var AttributeNames: [String]
}

struct GetQueueAttributesResponse: Decodable, Sendable {
    var Attributes: [String: String]?
}
