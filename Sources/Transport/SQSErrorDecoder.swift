import Foundation
import InputLimits

/// Turns an SQS error response into a ``QueueError``.
///
/// The SQS JSON protocol (Amazon SQS API reference, "Common Errors" and each action's "Errors") puts the error's
/// shape name in the body's `__type`, possibly namespaced (`com.amazonaws.sqs#QueueDoesNotExist`: the part after the
/// last `#` counts), and, because SQS keeps the `awsQueryCompatible` trait, the legacy Query code and fault in the
/// `x-amzn-query-error` header (`AWS.SimpleQueueService.NonExistentQueue;Sender`). Either may name the error; the
/// body's `__type` is tried first.
enum SQSErrorDecoder {
    /// Shape names and legacy Query codes, mapped to our codes.
    static let codes: [String: QueueError.Code] = [
        "QueueDoesNotExist": .queueDoesNotExist, "AWS.SimpleQueueService.NonExistentQueue": .queueDoesNotExist,
        "NonExistentQueue": .queueDoesNotExist,
        "QueueNameExists": .queueNameExists, "QueueAlreadyExists": .queueNameExists,
        "ReceiptHandleIsInvalid": .receiptHandleIsInvalid, "InvalidReceiptHandle": .receiptHandleIsInvalid,
        "MessageNotInflight": .messageNotInflight, "AWS.SimpleQueueService.MessageNotInflight": .messageNotInflight,
        "TooManyEntriesInBatchRequest": .tooManyEntriesInBatch,
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest": .tooManyEntriesInBatch,
        "EmptyBatchRequest": .emptyBatch, "AWS.SimpleQueueService.EmptyBatchRequest": .emptyBatch,
        "BatchEntryIdsNotDistinct": .batchEntryIdsNotDistinct,
        "AWS.SimpleQueueService.BatchEntryIdsNotDistinct": .batchEntryIdsNotDistinct,
        "BatchRequestTooLong": .batchRequestTooLong, "AWS.SimpleQueueService.BatchRequestTooLong": .batchRequestTooLong,
        "InvalidBatchEntryId": .invalidBatchEntryId, "AWS.SimpleQueueService.InvalidBatchEntryId": .invalidBatchEntryId,
        "InvalidParameterValue": .invalidParameter, "InvalidParameterValueException": .invalidParameter,
        "InvalidAttributeValue": .invalidParameter, "InvalidAttributeName": .invalidParameter,
        "InvalidMessageContents": .invalidParameter, "MissingParameter": .invalidParameter,
        "InvalidIdFormat": .invalidParameter, "ValidationError": .invalidParameter,
        "InvalidParameterCombination": .invalidParameter, "UnsupportedOperation": .invalidParameter,
        "AWS.SimpleQueueService.UnsupportedOperation": .invalidParameter, "MalformedQueryString": .invalidParameter,
        "AccessDenied": .accessDenied, "AccessDeniedException": .accessDenied, "KmsAccessDenied": .accessDenied,
        "SignatureDoesNotMatch": .invalidSignature, "IncompleteSignature": .invalidSignature,
        "InvalidSignatureException": .invalidSignature, "IncompleteSignatureException": .invalidSignature,
        "InvalidClientTokenId": .invalidCredentials, "UnrecognizedClientException": .invalidCredentials,
        "MissingAuthenticationToken": .invalidCredentials, "MissingAuthenticationTokenException": .invalidCredentials,
        "ExpiredToken": .invalidCredentials, "ExpiredTokenException": .invalidCredentials,
        "InvalidToken": .invalidCredentials, "InvalidSecurity": .invalidCredentials,
        "RequestExpired": .invalidSignature,
        "ThrottlingException": .throttled, "Throttling": .throttled, "RequestThrottled": .throttled,
        "KmsThrottled": .throttled, "OverLimit": .throttled,
        "ServiceUnavailable": .serviceUnavailable, "ServiceUnavailableException": .serviceUnavailable,
        "InternalFailure": .serviceUnavailable, "InternalError": .serviceUnavailable,
        "InternalServerError": .serviceUnavailable,
    ]

    /// The `__type` and `message` (or `Message`) of an error body.
    private struct Body: Decodable {
        var type: String?
        var message: String?
        var capitalMessage: String?
        enum CodingKeys: String, CodingKey {
            case type = "__type"
            case message
            case capitalMessage = "Message"
        }
    }

    /// Decodes an error response.
    ///
    /// - Parameters:
    ///   - status: The HTTP status code (400 or more).
    ///   - queryError: The `x-amzn-query-error` header, if any.
    ///   - contentType: The `Content-Type` header, for the message of a body that is not JSON.
    ///   - body: The body's bytes.
    ///   - operation: The SQS action, for the message.
    /// - Returns: The error; a 5xx without a recognised error is `.serviceUnavailable`, a 429 `.throttled`, any other
    ///   unrecognised error `.serviceError`, a 4xx whose body is not JSON `.unexpectedResponse`.
    static func decode(status: Int, queryError: String?, contentType: String?, body: [UInt8], operation: String)
        -> QueueError
    {
        // A body over the limits reads as "not JSON" (issue 12: untrusted JSON is limited before it is decoded).
        let parsed =
            (try? SQSResponseDecoder.limits.check(body)) == nil ? nil : try? JSONDecoder().decode(Body.self, from: Data(body))
        let shape = parsed?.type.map { String($0.split(separator: "#", omittingEmptySubsequences: false).last ?? "") }
        let legacy = queryError.map { String($0.split(separator: ";").first ?? "") }
        let text = parsed?.message ?? parsed?.capitalMessage ?? ""
        let named = [shape, legacy].compactMap { $0 }.filter { !$0.isEmpty }
        let summary = "SQS \(operation) failed with HTTP \(status)"
            + (named.isEmpty ? "" : " \(named[0])") + (text.isEmpty ? "" : ": \(text)")
        for name in named {
            if let code = codes[name] { return QueueError(code, summary) }
        }
        if parsed == nil {
            let kind = body.isEmpty ? "an empty body" : "a body that is not JSON (\(contentType ?? "no content type"), "
                + "\(body.count) bytes)"
            let message = "SQS \(operation) failed with HTTP \(status) and \(kind)"
            if status >= 500 { return QueueError(.serviceUnavailable, message) }
            if status == 429 { return QueueError(.throttled, message) }
            if status == 403 { return QueueError(.accessDenied, message) }
            return QueueError(.unexpectedResponse, message)
        }
        if status >= 500 { return QueueError(.serviceUnavailable, summary) }
        if status == 429 { return QueueError(.throttled, summary) }
        return QueueError(.serviceError, summary)
    }

    /// Maps the `Code` of a failed batch entry (`BatchResultErrorEntry`).
    static func entryError(code: String, message: String?, operation: String) -> QueueError {
        let summary = "SQS \(operation) entry failed: \(code)" + (message.map { ": \($0)" } ?? "")
        return QueueError(codes[code] ?? .serviceError, summary)
    }
}
