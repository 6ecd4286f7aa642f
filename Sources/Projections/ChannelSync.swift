import Domain
import Foundation

/// The request a channel is waiting on.
public struct OutstandingRequest: Codable, Sendable, Equatable {
    public var requestID: RequestID
    public var command: String
    public var sequence: Int64
    public var sentAt: Date
    /// The delivery deadline.
    public var expiresAt: Date
    /// The execution deadline: the response is due by then (delivery deadline + execution seconds).
    public var answerBy: Date?
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
    /// Desyncs seen (`channel.desync-detected`), and the last one's reason.
    public var desyncs: Int = 0
    public var lastDesync: String?
    /// Queue drains done, and the messages they removed.
    public var drains: Int = 0
    public var drainedMessages: Int = 0
    /// The request IDs of the last ``recentlyAnsweredLimit`` responses received in this epoch, oldest first: a
    /// restarted backend takes a redelivered or second answer to one of them for a duplicate, not a desync.
    public var recentlyAnswered: [RequestID] = []
    /// How many answered request IDs a row keeps.
    public static let recentlyAnsweredLimit = 16

    enum CodingKeys: String, CodingKey {
        case channel, epoch, lastSequence, outstanding, lastResponseAt, requestsSent, responsesReceived
        case responsesRejected, transportFailures, lastTransportError, desyncs, lastDesync, drains, drainedMessages
        case recentlyAnswered
    }

    public init(
        channel: ChannelID, epoch: Int64, lastSequence: Int64, outstanding: OutstandingRequest? = nil,
        lastResponseAt: Date? = nil, requestsSent: Int, responsesReceived: Int, responsesRejected: Int
    ) {
        self.channel = channel
        self.epoch = epoch
        self.lastSequence = lastSequence
        self.outstanding = outstanding
        self.lastResponseAt = lastResponseAt
        self.requestsSent = requestsSent
        self.responsesReceived = responsesReceived
        self.responsesRejected = responsesRejected
    }

    // Rows stored by older builds lack the newer counters: they decode as zero.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        channel = try c.decode(ChannelID.self, forKey: .channel)
        epoch = try c.decode(Int64.self, forKey: .epoch)
        lastSequence = try c.decode(Int64.self, forKey: .lastSequence)
        outstanding = try c.decodeIfPresent(OutstandingRequest.self, forKey: .outstanding)
        lastResponseAt = try c.decodeIfPresent(Date.self, forKey: .lastResponseAt)
        requestsSent = try c.decode(Int.self, forKey: .requestsSent)
        responsesReceived = try c.decode(Int.self, forKey: .responsesReceived)
        responsesRejected = try c.decode(Int.self, forKey: .responsesRejected)
        transportFailures = try c.decodeIfPresent(Int.self, forKey: .transportFailures) ?? 0
        lastTransportError = try c.decodeIfPresent(String.self, forKey: .lastTransportError)
        desyncs = try c.decodeIfPresent(Int.self, forKey: .desyncs) ?? 0
        lastDesync = try c.decodeIfPresent(String.self, forKey: .lastDesync)
        drains = try c.decodeIfPresent(Int.self, forKey: .drains) ?? 0
        drainedMessages = try c.decodeIfPresent(Int.self, forKey: .drainedMessages) ?? 0
        recentlyAnswered = try c.decodeIfPresent([RequestID].self, forKey: .recentlyAnswered) ?? []
    }
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
        case .channelDesyncDetected(let e): return [e.channel.description]
        case .channelQueuesDrained(let e): return [e.channel.description]
        case .serverHelloReceived, .taskSubmitted, .taskDispatched, .taskStarted, .taskFinished, .serverCapacitySet,
            .serverDrainRequested, .serverDetachRequested, .serverDetached, .serverLivenessChanged, .serverGPUsObserved,
            .taskDispatchWithdrawn, .taskRequeued, .unrecognisedTaskFound, .serverCapacityViolationRefused, .serverHealthChanged, .taskCancelRequested, .taskStartSending, .transfer, .agentInstance, .backend, .garbageCollected, .keys:
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
                expiresAt: e.expiresAt,
                answerBy: e.expiresAt.addingTimeInterval(Double(e.executionSeconds ?? 30)))
            row.requestsSent += 1
            rows[e.channel.description] = row
        case .responseReceived(let e):
            guard var row = rows[e.channel.description] else { return }
            if row.outstanding?.requestID == e.requestID { row.outstanding = nil }
            row.lastResponseAt = recorded.recordedAt
            row.responsesReceived += 1
            row.recentlyAnswered.append(e.requestID)
            row.recentlyAnswered.removeFirst(max(0, row.recentlyAnswered.count - ChannelRow.recentlyAnsweredLimit))
            rows[e.channel.description] = row
        case .responseRejected(let e):
            rows[e.channel.description]?.responsesRejected += 1
        case .transportFailed(let e):
            rows[e.channel.description]?.transportFailures += 1
            rows[e.channel.description]?.lastTransportError = "\(e.code): \(e.message)"
        case .channelDesyncDetected(let e):
            rows[e.channel.description]?.desyncs += 1
            rows[e.channel.description]?.lastDesync = e.reason
        case .channelQueuesDrained(let e):
            guard var row = rows[e.channel.description] else { return }
            row.epoch = e.toEpoch
            row.outstanding = nil
            row.recentlyAnswered = []
            row.drains += 1
            row.drainedMessages += e.requests.count + e.responses.count
            rows[e.channel.description] = row
        case .serverHelloReceived, .taskSubmitted, .taskDispatched, .taskStarted, .taskFinished, .serverCapacitySet,
            .serverDrainRequested, .serverDetachRequested, .serverDetached, .serverLivenessChanged, .serverGPUsObserved,
            .taskDispatchWithdrawn, .taskRequeued, .unrecognisedTaskFound, .serverCapacityViolationRefused, .serverHealthChanged, .taskCancelRequested, .taskStartSending, .transfer, .agentInstance, .backend, .garbageCollected, .keys:
            break
        }
    }
}
