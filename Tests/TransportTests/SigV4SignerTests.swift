import Foundation
import Testing

@testable import Transport

/// Known-answer tests with the example values AWS publishes for Signature Version 4: the AWS General Reference's
/// worked example (IAM `ListUsers`, access key `AKIDEXAMPLE`, 2015-08-30 12:36:00 UTC, `us-east-1`, service `iam`)
/// and the "Signature Version 4 test suite" cases `get-vanilla` and `post-vanilla` (service `service`, host
/// `example.amazonaws.com`).
@Suite struct SigV4SignerTests {
    static let credentials = AWSCredentials(
        accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    /// 20150830T123600Z.
    static let date = Date(timeIntervalSince1970: 1_440_938_160)

    @Test func formatsTheTimestampInUTC() {
        #expect(SigV4Signer.timestamp(Self.date) == "20150830T123600Z")
        #expect(SigV4Signer.timestamp(Date(timeIntervalSince1970: 0)) == "19700101T000000Z")
        #expect(SigV4Signer.timestamp(Date(timeIntervalSince1970: 951_782_400)) == "20000229T000000Z")
    }

    @Test func derivesTheDocumentedSigningKey() {
        let signer = SigV4Signer(credentials: Self.credentials, region: "us-east-1", service: "iam")
        #expect(SigV4Signer.hex(key: signer.signingKey(date: "20150830")) == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9")
    }

    @Test func signsTheDocumentedIAMListUsersExample() throws {
        let signer = SigV4Signer(credentials: Self.credentials, region: "us-east-1", service: "iam")
        let headers = [
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("Host", "iam.amazonaws.com"),
        ]
        let query = [("Action", "ListUsers"), ("Version", "2010-05-08")]
        var signed = headers
        signed.append(("X-Amz-Date", "20150830T123600Z"))
        let canonical = signer.canonicalRequest(method: "GET", path: "/", query: query, headers: signed, body: [])
        #expect(
            canonical.text == """
                GET
                /
                Action=ListUsers&Version=2010-05-08
                content-type:application/x-www-form-urlencoded; charset=utf-8
                host:iam.amazonaws.com
                x-amz-date:20150830T123600Z

                content-type;host;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """)
        let stringToSign = SigV4Signer.stringToSign(
            timestamp: "20150830T123600Z", scope: "20150830/us-east-1/iam/aws4_request",
            canonicalRequest: canonical.text)
        #expect(stringToSign.hasSuffix("\nf536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"))

        let added = signer.signatureHeaders(
            method: "GET", path: "/", query: query, headers: headers, body: [], date: Self.date)
        let authorization = try #require(added.first { $0.0 == "Authorization" }?.1)
        #expect(
            authorization
                == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
                + "SignedHeaders=content-type;host;x-amz-date, "
                + "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
        #expect(added.first { $0.0 == "X-Amz-Date" }?.1 == "20150830T123600Z")
    }

    @Test(arguments: [
        ("GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("POST", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ])
    func signsTheTestSuiteVanillaRequests(method: String, signature: String) throws {
        let signer = SigV4Signer(credentials: Self.credentials, region: "us-east-1", service: "service")
        let added = signer.signatureHeaders(
            method: method, path: "/", headers: [("Host", "example.amazonaws.com")], body: [], date: Self.date)
        let authorization = try #require(added.first { $0.0 == "Authorization" }?.1)
        #expect(
            authorization
                == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                + "SignedHeaders=host;x-amz-date, Signature=\(signature)")
    }

    @Test func signsTheSessionTokenToo() throws {
        var credentials = Self.credentials
        credentials.sessionToken = "token-value"
        let signer = SigV4Signer(credentials: credentials, region: "us-east-1", service: "sqs")
        let added = signer.signatureHeaders(
            method: "POST", path: "/", headers: [("Host", "sqs.us-east-1.amazonaws.com")], body: [], date: Self.date)
        #expect(added.first { $0.0 == "X-Amz-Security-Token" }?.1 == "token-value")
        let authorization = try #require(added.first { $0.0 == "Authorization" }?.1)
        #expect(authorization.contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"))
    }

    @Test func encodesReservedCharactersInTheQuery() {
        #expect(SigV4Signer.uriEncode("a b/c~d_e.f-g*é") == "a%20b%2Fc~d_e.f-g%2A%C3%A9")
    }
}

@Suite struct AWSCredentialsTests {
    @Test func redactsSecretsInEveryRendering() {
        let credentials = AWSCredentials(
            accessKeyID: "AKIAEXAMPLE1234", secretAccessKey: "s3cr3t-value", sessionToken: "t0ken-value")
        var dumped = ""
        dump(credentials, to: &dumped)
        for text in [
            credentials.description, credentials.debugDescription, "\(credentials)", String(reflecting: credentials),
            dumped,
        ] {
            #expect(!text.contains("s3cr3t"))
            #expect(!text.contains("t0ken"))
            #expect(!text.contains("AKIAEXAMPLE"))
        }
        #expect(credentials.description.contains("…1234"))
    }

    @Test func readsTheEnvironmentFirst() throws {
        let credentials = try AWSCredentials.resolve(environment: [
            "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        ])
        #expect(credentials == AWSCredentials(accessKeyID: "AKID", secretAccessKey: "secret", sessionToken: "token"))
    }

    @Test func readsAProfileOfTheSharedCredentialsFile() throws {
        let path = NSTemporaryDirectory() + "touchstone-credentials-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try """
        # comment
        [default]
        aws_access_key_id = DEFAULTKEY
        aws_secret_access_key = default-secret

        [ci]
        aws_access_key_id=CIKEY
        aws_secret_access_key =ci-secret
        ; another comment
        aws_session_token = ci-token
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let ci = try AWSCredentials.resolve(environment: ["AWS_SHARED_CREDENTIALS_FILE": path, "AWS_PROFILE": "ci"])
        #expect(ci == AWSCredentials(accessKeyID: "CIKEY", secretAccessKey: "ci-secret", sessionToken: "ci-token"))
        let fallback = try AWSCredentials.resolve(environment: ["AWS_SHARED_CREDENTIALS_FILE": path])
        #expect(fallback == AWSCredentials(accessKeyID: "DEFAULTKEY", secretAccessKey: "default-secret"))

        let missing = #expect(throws: QueueError.self) {
            try AWSCredentials.resolve(environment: ["AWS_SHARED_CREDENTIALS_FILE": path, "AWS_PROFILE": "nope"])
        }
        #expect(missing?.code == .missingCredentials)
    }

    @Test func failsWithoutAnyCredentials() {
        let error = #expect(throws: QueueError.self) {
            try AWSCredentials.resolve(environment: ["AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials"])
        }
        #expect(error?.code == .missingCredentials)
    }
}

@Suite struct SQSErrorDecoderTests {
    @Test func takesTheTypeAfterTheLastHash() {
        let body = Array(#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The queue does not exist."}"#.utf8)
        let error = SQSErrorDecoder.decode(
            status: 400, queryError: nil, contentType: "application/x-amz-json-1.0", body: body, operation: "GetQueueUrl")
        #expect(error.code == .queueDoesNotExist)
        #expect(error.message.contains("The queue does not exist."))
    }

    @Test func fallsBackToTheQueryErrorHeader() {
        let body = Array(#"{"__type":"SomethingNew","message":"x"}"#.utf8)
        let error = SQSErrorDecoder.decode(
            status: 400, queryError: "AWS.SimpleQueueService.NonExistentQueue;Sender", contentType: nil, body: body,
            operation: "SendMessage")
        #expect(error.code == .queueDoesNotExist)
    }

    @Test(arguments: [
        (503, "text/html", "<html><body>Service Unavailable</body></html>", QueueError.Code.serviceUnavailable),
        (500, nil, "", .serviceUnavailable),
        (429, "text/plain", "slow down", .throttled),
        (400, "text/html", "<html>bad</html>", .unexpectedResponse),
    ] as [(Int, String?, String, QueueError.Code)])
    func givesAClearErrorForBodiesThatAreNotJSON(status: Int, contentType: String?, body: String, code: QueueError.Code)
    {
        let error = SQSErrorDecoder.decode(
            status: status, queryError: nil, contentType: contentType, body: Array(body.utf8), operation: "SendMessage")
        #expect(error.code == code)
        #expect(error.message.contains("HTTP \(status)"))
    }

    @Test(arguments: [
        ("SignatureDoesNotMatch", QueueError.Code.invalidSignature), ("InvalidClientTokenId", .invalidCredentials),
        ("AccessDenied", .accessDenied), ("ThrottlingException", .throttled), ("ReceiptHandleIsInvalid",
        .receiptHandleIsInvalid), ("MessageNotInflight", .messageNotInflight), ("Brand.New#Thing", .serviceError),
    ])
    func mapsNamedErrors(type: String, code: QueueError.Code) {
        let body = Array(#"{"__type":"\#(type)","message":"m"}"#.utf8)
        let error = SQSErrorDecoder.decode(
            status: 400, queryError: nil, contentType: nil, body: body, operation: "ReceiveMessage")
        #expect(error.code == code)
    }

    @Test func retriesOnlyWhatMayPass() {
        #expect(SQSRetryPolicy.isRetryable(.throttled))
        #expect(SQSRetryPolicy.isRetryable(.serviceUnavailable))
        #expect(SQSRetryPolicy.isRetryable(.connectionFailed))
        for code in [QueueError.Code.accessDenied, .invalidSignature, .queueDoesNotExist, .invalidParameter] {
            #expect(!SQSRetryPolicy.isRetryable(code))
        }
        let policy = SQSRetryPolicy(maximumAttempts: 5, baseDelay: .milliseconds(100), maximumDelay: .seconds(1))
        #expect(policy.delayCeiling(beforeRetry: 1) == .milliseconds(100))
        #expect(policy.delayCeiling(beforeRetry: 3) == .milliseconds(400))
        #expect(policy.delayCeiling(beforeRetry: 10) == .seconds(1))
        var generator = SystemRandomNumberGenerator()
        for retry in 1...6 {
            #expect(policy.delay(beforeRetry: retry, using: &generator) <= policy.delayCeiling(beforeRetry: retry))
        }
    }
}
