/// The attributes a queue is created with (the SQS `CreateQueue` attributes Touchstone uses).
///
/// Ranges and defaults follow the SQS API reference, `CreateQueue`: `VisibilityTimeout` 0–43,200 seconds (default 30)
/// and `MaximumMessageSize` 1,024–1,048,576 bytes (default 1 MiB).
public struct QueueAttributes: Sendable, Equatable {
    /// How long a received message stays hidden unless the receive names its own timeout (`VisibilityTimeout`).
    ///
    /// 0–43,200 seconds (12 hours), whole milliseconds in the embedded queue; default 30 seconds.
    public var visibilityTimeout: Duration
    /// The largest message body the queue accepts, in UTF-8 bytes (`MaximumMessageSize`).
    ///
    /// 1,024–1,048,576 bytes; default 1,048,576 (1 MiB).
    public var maximumMessageSize: Int

    /// Creates attributes; the defaults are SQS's.
    ///
    /// - Parameters:
    ///   - visibilityTimeout: 0–43,200 seconds; default 30 seconds.
    ///   - maximumMessageSize: 1,024–1,048,576 bytes; default 1,048,576.
    public init(visibilityTimeout: Duration = .seconds(30), maximumMessageSize: Int = 1_048_576) {
        self.visibilityTimeout = visibilityTimeout
        self.maximumMessageSize = maximumMessageSize
    }
}
