import Domain
import Foundation

/// The request a channel is waiting on.
public struct OutstandingRequest: Codable, Sendable, Equatable {
    public var requestID: RequestID
    public var command: String
    public var sequence: Int64
    public var sentAt: Date
    public var expiresAt: Date
}

/// One channel's protocol state.
public struct ChannelRow: Codable, Sendable, Equatable {
    public var channel: ChannelID
    /// Bumped by every queue drain; messages of an older epoch are stale.
    public var epoch: Int64
    /// The sequence of the last request sent (0 before the first).
    public var lastSequence: Int64
    /// At most one request is outstanding per channel.
    public var outstanding: OutstandingRequest?
    public var lastResponseAt: Date?
    public var requestsSent: Int
    public var responsesReceived: Int
    /// Messages on the response queue that were malformed, for another request, or of an old epoch.
    public var responsesRejected: Int
    /// Queue operations that failed (see `channel.transport-failed`).
    public var transportFailures: Int = 0
    /// The last one, `code: message`.
    public var lastTransportError: String?
}

/// Per-channel epoch, outstanding request and counters.
public struct ChannelSync: Projection {
    public static let name = "channel_sync"
    public var rows: [String: ChannelRow] = [:]
    public init() {}

    /// The row of one channel.
    public subscript(channel: ChannelID) -> ChannelRow? { rows[channel.description] }

    public static func keys(touchedBy event: DomainEvent) -> [String] {
        switch event {
        case .serverAttached(let e):
            return (0..<e.channels).map { ChannelID(server: e.serverID, index: $0).description }
        case .requestSent(let e): return [e.channel.description]
        case .responseReceived(let e): return [e.channel.description]
        case .responseRejected(let e): return [e.channel.description]
        case .transportFailed(let e): return [e.channel.description]
        case .serverHelloReceived, .taskSubmitted, .taskDispatched, .taskStarted, .taskFinished, .serverCapacitySet,
            .serverDrainRequested, .serverDetachRequested, .serverDetached, .serverLivenessChanged, .serverGPUsObserved,
            .taskDispatchWithdrawn, .taskRequeued, .transfer:
            return []
        }
    }

    public mutating func apply(_ recorded: RecordedEvent<DomainEvent>) {
        switch recorded.event {
        case .serverAttached(let e):
            for index in 0..<e.channels {
                let id = ChannelID(server: e.serverID, index: index)
                if rows[id.description] == nil {
                    rows[id.description] = ChannelRow(
                        channel: id, epoch: 0, lastSequence: 0, requestsSent: 0, responsesReceived: 0,
                        responsesRejected: 0)
                }
            }
        case .requestSent(let e):
            guard var row = rows[e.channel.description] else { return }
            row.lastSequence = e.sequence
            row.outstanding = OutstandingRequest(
                requestID: e.requestID, command: e.command, sequence: e.sequence, sentAt: recorded.recordedAt,
                expiresAt: e.expiresAt)
            row.requestsSent += 1
            rows[e.channel.description] = row
        case .responseReceived(let e):
            guard var row = rows[e.channel.description] else { return }
            if row.outstanding?.requestID == e.requestID { row.outstanding = nil }
            row.lastResponseAt = recorded.recordedAt
            row.responsesReceived += 1
            rows[e.channel.description] = row
        case .responseRejected(let e):
            rows[e.channel.description]?.responsesRejected += 1
        case .transportFailed(let e):
            rows[e.channel.description]?.transportFailures += 1
            rows[e.channel.description]?.lastTransportError = "\(e.code): \(e.message)"
        case .serverHelloReceived, .taskSubmitted, .taskDispatched, .taskStarted, .taskFinished, .serverCapacitySet,
            .serverDrainRequested, .serverDetachRequested, .serverDetached, .serverLivenessChanged, .serverGPUsObserved,
            .taskDispatchWithdrawn, .taskRequeued, .transfer:
            break
        }
    }
}
