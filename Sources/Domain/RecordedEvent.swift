import Foundation

/// A decoded event with the log's envelope: where and when it was recorded, and by whom.
public struct RecordedEvent<E: Sendable & Equatable>: Sendable, Equatable {
    /// Global position in the log.
    public var position: Int64
    public var stream: String
    public var version: Int64
    public var recordedAt: Date
    /// `operator:<user>`, `backend`, `agent:<server>`.
    public var actor: String
    public var correlationID: String?
    public var event: E

    public init(
        position: Int64, stream: String, version: Int64, recordedAt: Date, actor: String, correlationID: String? = nil,
        event: E
    ) {
        self.position = position
        self.stream = stream
        self.version = version
        self.recordedAt = recordedAt
        self.actor = actor
        self.correlationID = correlationID
        self.event = event
    }
}
