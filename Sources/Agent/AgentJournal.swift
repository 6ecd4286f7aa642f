import Domain
import EventStore
import Foundation
import Wire

/// The agent's local journal: an event log of its own (the generic ``SQLiteEventStore``), never the backend's.
///
/// Streams:
/// - `request/<request-id>`: `request.answered` holds the response sent, so a redelivered or resent request gets the
///   recorded response again and is never executed twice.
/// - `attempt/<task>/<n>`: `attempt.launching` (written before the process is started, so an agent killed between
///   the launch and its record finds the attempt on restart), `attempt.started` (labels, pid) and `attempt.ended`
///   (exit code, outputs): the attempt's status report after each event.
/// - `channel/<n>`: `channel.epoch`, the epoch the channel was resynchronised to; older requests are refused.
public struct AgentJournal: Sendable {
    let store: SQLiteEventStore
    let actor: String

    /// Opens the journal.
    ///
    /// - Throws: ``EventStoreError`` `.notAnEventLog` when the file is not a journal, `.storage` otherwise.
    public init(path: String, serverID: ServerID) throws(EventStoreError) {
        store = try SQLiteEventStore(path: path)
        actor = "agent:\(serverID)"
    }

    /// The response recorded for a request, if it was answered before.
    ///
    /// - Throws: ``EventStoreError`` `.storage`.
    public func recordedResponse(for requestID: RequestID) async throws(EventStoreError) -> ResponseEnvelope? {
        guard let event = try await store.read(stream: "request/\(requestID)").last else { return nil }
        return try? WireCoding.decoder().decode(ResponseEnvelope.self, from: event.payload)
    }

    /// Records the response to a request before it is sent. A second record for the same request is ignored.
    ///
    /// - Returns: The response that stands recorded: `response`, or the earlier one if another path recorded first.
    /// - Throws: ``EventStoreError`` `.storage` (e.g. disk full): the caller must then not execute or answer.
    public func record(_ response: ResponseEnvelope, for requestID: RequestID) async throws(EventStoreError)
        -> ResponseEnvelope
    {
        let payload = Data(WireCoding.encode(response).utf8)
        do {
            try await store.append(
                [ProposedEvent(type: "request.answered", schema: 1, payload: payload, metadata: meta(requestID))],
                to: "request/\(requestID)", expectedVersion: .noStream)
            return response
        } catch where error.code == .wrongExpectedVersion {
            return try await recordedResponse(for: requestID) ?? response
        }
    }

    /// Records an attempt's status report (after start, and after it ended).
    ///
    /// - Throws: ``EventStoreError`` `.storage`.
    public func record(_ report: TaskStatusReport) async throws(EventStoreError) {
        let type = report.state == .running ? "attempt.started" : "attempt.ended"
        let payload = Data(WireCoding.encode(report).utf8)
        try await store.append(
            [ProposedEvent(type: type, schema: 1, payload: payload, metadata: meta(nil))],
            to: "attempt/\(report.taskID)/\(report.attempt)")
    }

    /// Records that an attempt is about to be launched, before its process exists.
    ///
    /// - Parameter report: The attempt's labels (state `failedToStart` until the launch is recorded).
    /// - Throws: ``EventStoreError`` `.storage`: the caller must then not launch.
    public func recordLaunching(_ report: TaskStatusReport) async throws(EventStoreError) {
        let payload = Data(WireCoding.encode(report).utf8)
        try await store.append(
            [ProposedEvent(type: "attempt.launching", schema: 1, payload: payload, metadata: meta(nil))],
            to: "attempt/\(report.taskID)/\(report.attempt)")
    }

    /// The latest status report of every attempt in the journal, and the attempts whose launch was never recorded
    /// as done (the agent stopped between launching and recording).
    ///
    /// - Throws: ``EventStoreError`` `.storage`, `.corruptPayload`.
    public func attempts() async throws(EventStoreError) -> (
        reports: [TaskAttempt: TaskStatusReport], launching: Set<TaskAttempt>
    ) {
        var reports: [TaskAttempt: TaskStatusReport] = [:]
        var launching: Set<TaskAttempt> = []
        var after: Int64 = 0
        let decoder = WireCoding.decoder()
        while true {
            let batch = try await store.read(
                after: after, limit: 1_000, types: ["attempt.launching", "attempt.started", "attempt.ended"])
            guard let last = batch.last else { return (reports, launching) }
            for event in batch {
                do {
                    let report = try decoder.decode(TaskStatusReport.self, from: event.payload)
                    reports[report.key] = report
                    if event.type == "attempt.launching" {
                        launching.insert(report.key)
                    } else {
                        launching.remove(report.key)
                    }
                } catch {
                    throw EventStoreError(.corruptPayload, "journal event at position \(event.position): \(error)")
                }
            }
            after = last.position
        }
    }

    /// Records the epoch a channel was resynchronised to.
    ///
    /// - Throws: ``EventStoreError`` `.storage`.
    public func recordEpoch(_ epoch: Int64, channel: Int) async throws(EventStoreError) {
        let payload = Data("{\"epoch\":\(epoch)}".utf8)
        try await store.append(
            [ProposedEvent(type: "channel.epoch", schema: 1, payload: payload, metadata: meta(nil))],
            to: "channel/\(channel)")
    }

    /// The latest recorded epoch of every channel.
    ///
    /// - Throws: ``EventStoreError`` `.storage`, `.corruptPayload`.
    public func epochs() async throws(EventStoreError) -> [Int: Int64] {
        struct Payload: Decodable { var epoch: Int64 }
        var epochs: [Int: Int64] = [:]
        var after: Int64 = 0
        while true {
            let batch = try await store.read(after: after, limit: 1_000, types: ["channel.epoch"])
            guard let last = batch.last else { return epochs }
            for event in batch {
                guard let channel = Int(event.stream.dropFirst("channel/".count)),
                    let payload = try? JSONDecoder().decode(Payload.self, from: event.payload)
                else {
                    throw EventStoreError(.corruptPayload, "journal event at position \(event.position) is not an epoch")
                }
                epochs[channel] = payload.epoch
            }
            after = last.position
        }
    }

    /// Records this agent process's instance ID (``ResponseEnvelope/instance``), so that a later life of the agent in
    /// the same workspace answers requests still addressed to this one (issue 16).
    ///
    /// - Throws: ``EventStoreError`` `.storage`.
    public func recordInstance(_ instance: String) async throws(EventStoreError) {
        let payload = Data(WireCoding.encode(["instance": instance]).utf8)
        try await store.append(
            [ProposedEvent(type: "agent.instance-started", schema: 1, payload: payload, metadata: meta(nil))],
            to: "agent/instances")
    }

    /// Every instance ID recorded in this workspace, oldest first.
    ///
    /// - Throws: ``EventStoreError`` `.storage`, `.corruptPayload`.
    public func instances() async throws(EventStoreError) -> [String] {
        struct Payload: Decodable { var instance: String }
        var instances: [String] = []
        var after: Int64 = 0
        while true {
            let batch = try await store.read(after: after, limit: 1_000, types: ["agent.instance-started"])
            guard let last = batch.last else { return instances }
            for event in batch {
                guard let payload = try? JSONDecoder().decode(Payload.self, from: event.payload) else {
                    throw EventStoreError(.corruptPayload, "journal event at position \(event.position) is not an instance")
                }
                instances.append(payload.instance)
            }
            after = last.position
        }
    }

    private func meta(_ requestID: RequestID?) -> EventMetadata {
        EventMetadata(actor: actor, correlationID: requestID?.rawValue)
    }
}
