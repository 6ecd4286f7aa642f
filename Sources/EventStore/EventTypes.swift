import Foundation

/// Who or what caused an event, and which request it belongs to.
public struct EventMetadata: Codable, Sendable, Equatable, Hashable {
    /// `operator:<user>`, `backend`, or `agent:<server>`.
    public var actor: String
    /// The request ID this event belongs to (correlation), when there is one.
    public var correlationID: String?
    /// The event or command that caused this one (causation), when known.
    public var causationID: String?

    public init(actor: String, correlationID: String? = nil, causationID: String? = nil) {
        self.actor = actor
        self.correlationID = correlationID
        self.causationID = causationID
    }
}

/// An event about to be appended: type, schema version, JSON payload and metadata.
public struct ProposedEvent: Sendable, Equatable {
    /// The stable type string, e.g. `task.submitted`; decoupled from any Swift name.
    public var type: String
    /// The payload's schema version, starting at 1; older versions are upcast on read.
    public var schema: Int
    /// The payload as UTF-8 JSON bytes.
    public var payload: Data
    public var metadata: EventMetadata

    public init(type: String, schema: Int, payload: Data, metadata: EventMetadata) {
        self.type = type
        self.schema = schema
        self.payload = payload
        self.metadata = metadata
    }
}

/// An event as stored in the log.
public struct StoredEvent: Sendable, Equatable, Codable {
    /// Global position: 1, 2, 3, … in append order, never reused.
    public var position: Int64
    /// The stream, e.g. `task/tsk-3f2a…`, `server/gpu-07`, `channel/gpu-07/1`.
    public var stream: String
    /// Version within the stream: 1 for its first event.
    public var version: Int64
    public var type: String
    public var schema: Int
    public var payload: Data
    public var metadata: EventMetadata
    /// When the event was appended (UTC, millisecond precision).
    public var recordedAt: Date
    /// SHA-256 of the previous event's hash and this event's canonical bytes (32 bytes).
    public var hash: Data

    public init(
        position: Int64, stream: String, version: Int64, type: String, schema: Int, payload: Data,
        metadata: EventMetadata, recordedAt: Date, hash: Data
    ) {
        self.position = position
        self.stream = stream
        self.version = version
        self.type = type
        self.schema = schema
        self.payload = payload
        self.metadata = metadata
        self.recordedAt = recordedAt
        self.hash = hash
    }
}

/// What an append expects of its stream's current version (optimistic concurrency).
public enum ExpectedVersion: Sendable, Equatable {
    /// Append whatever the version.
    case any
    /// The stream must not exist yet.
    case noStream
    /// The stream's last event must have exactly this version.
    case exact(Int64)
}

/// One stream's part of an atomic multi-stream append.
public struct StreamAppend: Sendable {
    public var stream: String
    public var expectedVersion: ExpectedVersion
    public var events: [ProposedEvent]

    public init(stream: String, expectedVersion: ExpectedVersion, events: [ProposedEvent]) {
        self.stream = stream
        self.expectedVersion = expectedVersion
        self.events = events
    }
}
