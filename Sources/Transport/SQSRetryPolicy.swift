import FileSignals
/// How ``SQSClient`` retries a request that failed for a reason that may pass: throttling (`.throttled`), a server
/// failure (`.serviceUnavailable`) or a connection error (`.connectionFailed`). Nothing else is retried.
///
/// The wait before retry `n` (1-based) is "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"):
/// a uniformly random duration between zero and `min(maximumDelay, baseDelay × 2^(n-1))`.
public struct SQSRetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included; 1 disables retries. Default 4 (3 retries).
    public var maximumAttempts: Int
    /// The ceiling of the first retry's wait. Default 50 ms.
    public var baseDelay: Duration
    /// The largest ceiling of any wait. Default 2 s, so a request gives up within about 3.5 s of waiting.
    public var maximumDelay: Duration

    /// Creates a retry policy.
    ///
    /// - Parameters:
    ///   - maximumAttempts: Attempts in all, at least 1; default 4.
    ///   - baseDelay: The ceiling of the first retry's wait; default 50 ms.
    ///   - maximumDelay: The largest ceiling of any wait; default 2 s.
    public init(maximumAttempts: Int = 4, baseDelay: Duration = .milliseconds(50), maximumDelay: Duration = .seconds(2))
    {
        self.maximumAttempts = max(1, maximumAttempts)
        self.baseDelay = baseDelay
        self.maximumDelay = maximumDelay
    }

    /// No retries: every failure is reported at once.
    public static let none = SQSRetryPolicy(maximumAttempts: 1)

    /// The ceiling of the wait before retry `retry` (1-based).
    func delayCeiling(beforeRetry retry: Int) -> Duration {
        let factor = 1 << min(max(retry - 1, 0), 20)
        return min(maximumDelay, baseDelay * factor)
    }

    /// A random wait in `0...delayCeiling(beforeRetry:)` (full jitter).
    func delay(beforeRetry retry: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let ceiling = delayCeiling(beforeRetry: retry).wholeMilliseconds
        guard ceiling > 0 else { return .zero }
        return .milliseconds(Int64.random(in: 0...ceiling, using: &generator))
    }

    /// Whether an error of this code may pass on its own.
    static func isRetryable(_ code: QueueError.Code) -> Bool {
        code == .throttled || code == .serviceUnavailable || code == .connectionFailed
    }
}
