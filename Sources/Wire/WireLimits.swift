import InputLimits

extension WireCoding {
    /// The limits every request and response envelope must fit before it is decoded (issue 12): 1 MiB, the most one
    /// queue message carries (SQS's maximum message size, 1,048,576 bytes, "Amazon SQS message quotas"; the embedded
    /// queue keeps the same bound, ``Transport/SQSLimits``), and depth 32 (the deepest envelope we send, a
    /// `startTask` with working files, nests 6 deep).
    public static let envelopeLimits = JSONLimits(maxBytes: 1 << 20, maxDepth: 32)

    /// Checks a message against ``envelopeLimits``: the pure layer that runs before any decoding or signature check.
    ///
    /// - Parameters:
    ///   - text: The message as it came off the queue.
    ///   - code: The error code to throw: `.badRequest` for requests, `.badResponse` for responses.
    /// - Throws: ``WireError`` with `code` and a one-line message naming the limit.
    public static func checkLimits(_ text: String, code: WireError.Code) throws(WireError) {
        do {
            try envelopeLimits.check(text)
        } catch {
            let what = code == .badRequest ? "request" : "response"
            throw WireError(code, "\(what) refused before decoding: \(error)")
        }
    }
}
