import Foundation
import InputLimits

/// Encodes domain events to `(type, schema, JSON)` and back, upcasting old schemas.
public enum DomainEventCodec {
    /// A stored event this build cannot turn into a ``DomainEvent``.
    public struct DecodeError: Error, Sendable, CustomStringConvertible {
        public enum Kind: Sendable { case unknownEventType, corruptPayload }
        public var kind: Kind
        public var message: String
        public var description: String { message }
    }


    /// The JSON encoder for payloads: sorted keys, dates as Unix milliseconds, data as base64.
    public static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .millisecondsSince1970
        encoder.dataEncodingStrategy = .base64
        return encoder
    }

    /// The JSON decoder matching ``makeEncoder()``.
    public static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        decoder.dataDecodingStrategy = .base64
        return decoder
    }

    /// The type string, schema version and JSON payload of an event.
    ///
    /// - Parameter encoder: The encoder of the payload: ``makeEncoder()`` for what is stored; another (ISO 8601 dates,
    ///   say) only for display.
    public static func encode(_ event: DomainEvent, encoder: JSONEncoder = makeEncoder()) -> (
        type: String, schema: Int, payload: Data
    ) {
        func pack<P: EventPayload>(_ payload: P) -> (String, Int, Data) {
            // Encoding our own value types cannot fail: they hold only strings, numbers, dates and data.
            (P.eventType, P.schemaVersion, try! encoder.encode(payload))
        }
        switch event {
        case .serverAttached(let p): return pack(p)
        case .serverHelloReceived(let p): return pack(p)
        case .taskSubmitted(let p): return pack(p)
        case .taskDispatched(let p): return pack(p)
        case .taskStarted(let p): return pack(p)
        case .taskFinished(let p): return pack(p)
        case .requestSent(let p): return pack(p)
        case .responseReceived(let p): return pack(p)
        case .responseRejected(let p): return pack(p)
        case .serverCapacitySet(let p): return pack(p)
        case .serverDrainRequested(let p): return pack(p)
        case .serverDetachRequested(let p): return pack(p)
        case .serverDetached(let p): return pack(p)
        case .serverLivenessChanged(let p): return pack(p)
        case .taskDispatchWithdrawn(let p): return pack(p)
        case .taskRequeued(let p): return pack(p)
        case .serverGPUsObserved(let p): return pack(p)
        case .transportFailed(let p): return pack(p)
        case .channelDesyncDetected(let p): return pack(p)
        case .channelQueuesDrained(let p): return pack(p)
        case .unrecognisedTaskFound(let p): return pack(p)
        case .serverCapacityViolationRefused(let p): return pack(p)
        case .serverHealthChanged(let p): return pack(p)
        case .taskCancelRequested(let p): return pack(p)
        case .taskStartSending(let p): return pack(p)
        case .transfer(.started(let p)): return pack(p)
        case .transfer(.completed(let p)): return pack(p)
        case .transfer(.failed(let p)): return pack(p)
        case .transfer(.rejected(let p)): return pack(p)
        case .keys(.agentKeyPinned(let p)): return pack(p)
        case .keys(.backendKeyRotated(let p)): return pack(p)
        case .agentInstance(.changed(let p)): return pack(p)
        case .agentInstance(.fenced(let p)): return pack(p)
        case .backend(.started(let p)): return pack(p)
        case .backend(.stopped(let p)): return pack(p)
        case .garbageCollected(let p): return pack(p)
        }
    }

    /// Decodes a stored payload, upcasting older schema versions.
    ///
    /// Uses ``FastJSONDecoder`` (same results as ``makeDecoder()``'s `JSONDecoder`, several times faster).
    ///
    /// - Parameter position: Named in the error, so an operator can find the event.
    /// - Throws: ``DecodeError`` `.unknownEventType` for a `(type, schema)` this build does not know;
    ///   `.corruptPayload` when the JSON is over ``payloadLimits`` or does not match the schema.
    public static func decode(type: String, schema: Int, payload: Data, position: Int64) throws(DecodeError)
        -> DomainEvent
    {
        let result = payload.withUnsafeBytes { bytes in
            Result { () throws(DecodeError) in try decode(type: type, schema: schema, bytes: bytes, position: position) }
        }
        return try result.get()
    }

    /// Decodes a stored payload from bytes valid for the duration of the call (e.g. an SQLite column's blob).
    ///
    /// - Throws: As ``decode(type:schema:payload:position:)``.
    public static func decode(type: String, schema: Int, bytes payload: UnsafeRawBufferPointer, position: Int64)
        throws(DecodeError) -> DomainEvent
    {
        try decode(type: type, schema: schema, position: position, with: FastPayload(bytes: payload))
    }

    /// Decodes a stored payload with Foundation's `JSONDecoder` (``makeDecoder()``): the reference the fast path is
    /// tested against.
    ///
    /// - Throws: As ``decode(type:schema:payload:position:)``.
    public static func decodeWithFoundation(type: String, schema: Int, payload: Data, position: Int64)
        throws(DecodeError) -> DomainEvent
    {
        try decode(type: type, schema: schema, position: position, with: FoundationPayload(data: payload))
    }

    private static func decode(type: String, schema: Int, position: Int64, with source: some PayloadSource)
        throws(DecodeError) -> DomainEvent
    {
        func unpack<P: EventPayload>(_: P.Type) throws(DecodeError) -> P {
            do {
                return try source.decode(P.self)
            } catch {
                throw DecodeError(
                    kind: .corruptPayload, message: "event at position \(position) (\(type) v\(schema)): \(error)")
            }
        }
        switch (type, schema) {
        case (ServerAttached.eventType, 1): return .serverAttached(try unpack(ServerAttached.self))
        case (ServerHelloReceived.eventType, 1): return .serverHelloReceived(try unpack(ServerHelloReceived.self))
        case (TaskSubmitted.eventType, 1): return .taskSubmitted(try unpack(TaskSubmitted.self))
        case (TaskDispatched.eventType, 1): return .taskDispatched(try unpack(TaskDispatched.self))
        case (TaskStarted.eventType, 1): return .taskStarted(try unpack(TaskStarted.self))
        case (TaskFinished.eventType, 1): return .taskFinished(try unpack(TaskFinished.self))
        case (RequestSent.eventType, 1): return .requestSent(try unpack(RequestSent.self))
        case (ResponseReceived.eventType, 1): return .responseReceived(try unpack(ResponseReceived.self))
        case (ResponseRejected.eventType, 1): return .responseRejected(try unpack(ResponseRejected.self))
        case (ServerCapacitySet.eventType, 1): return .serverCapacitySet(try unpack(ServerCapacitySet.self))
        case (ServerDrainRequested.eventType, 1): return .serverDrainRequested(try unpack(ServerDrainRequested.self))
        case (ServerDetachRequested.eventType, 1):
            return .serverDetachRequested(try unpack(ServerDetachRequested.self))
        case (ServerDetached.eventType, 1): return .serverDetached(try unpack(ServerDetached.self))
        case (ServerLivenessChanged.eventType, 1):
            return .serverLivenessChanged(try unpack(ServerLivenessChanged.self))
        case (TaskDispatchWithdrawn.eventType, 1):
            return .taskDispatchWithdrawn(try unpack(TaskDispatchWithdrawn.self))
        case (TaskRequeued.eventType, 1): return .taskRequeued(try unpack(TaskRequeued.self))
        case (ServerGPUsObserved.eventType, 1): return .serverGPUsObserved(try unpack(ServerGPUsObserved.self))
        case (TransportFailed.eventType, 1): return .transportFailed(try unpack(TransportFailed.self))
        case (ChannelDesyncDetected.eventType, 1):
            return .channelDesyncDetected(try unpack(ChannelDesyncDetected.self))
        case (ChannelQueuesDrained.eventType, 1): return .channelQueuesDrained(try unpack(ChannelQueuesDrained.self))
        case (UnrecognisedTaskFound.eventType, 1):
            return .unrecognisedTaskFound(try unpack(UnrecognisedTaskFound.self))
        case (ServerCapacityViolationRefused.eventType, 1):
            return .serverCapacityViolationRefused(try unpack(ServerCapacityViolationRefused.self))
        case (ServerHealthChanged.eventType, 1): return .serverHealthChanged(try unpack(ServerHealthChanged.self))
        case (TaskCancelRequested.eventType, 1): return .taskCancelRequested(try unpack(TaskCancelRequested.self))
        case (TaskStartSending.eventType, 1): return .taskStartSending(try unpack(TaskStartSending.self))
        case (GarbageCollected.eventType, 1): return .garbageCollected(try unpack(GarbageCollected.self))
        case (TransferStarted.eventType, 1): return .transfer(.started(try unpack(TransferStarted.self)))
        case (TransferCompleted.eventType, 1): return .transfer(.completed(try unpack(TransferCompleted.self)))
        case (TransferFailed.eventType, 1): return .transfer(.failed(try unpack(TransferFailed.self)))
        case (TransferRejected.eventType, 1): return .transfer(.rejected(try unpack(TransferRejected.self)))
        case (AgentKeyPinned.eventType, 1): return .keys(.agentKeyPinned(try unpack(AgentKeyPinned.self)))
        case (BackendKeyRotated.eventType, 1): return .keys(.backendKeyRotated(try unpack(BackendKeyRotated.self)))
        case (AgentInstanceChanged.eventType, 1):
            return .agentInstance(.changed(try unpack(AgentInstanceChanged.self)))
        case (AgentInstanceFenced.eventType, 1): return .agentInstance(.fenced(try unpack(AgentInstanceFenced.self)))
        case (BackendStarted.eventType, 1): return .backend(.started(try unpack(BackendStarted.self)))
        case (BackendStopped.eventType, 1): return .backend(.stopped(try unpack(BackendStopped.self)))
        default:
            throw DecodeError(
                kind: .unknownEventType,
                message: "event at position \(position) has type \(type) v\(schema), which this build does not know")
        }
    }

    /// The stream an event belongs to.
    public static func stream(of event: DomainEvent) -> String {
        switch event {
        case .serverAttached(let p): return StreamName.server(p.serverID)
        case .serverHelloReceived(let p): return StreamName.server(p.serverID)
        case .taskSubmitted(let p): return StreamName.task(p.taskID)
        case .taskDispatched(let p): return StreamName.task(p.taskID)
        case .taskStarted(let p): return StreamName.task(p.taskID)
        case .taskFinished(let p): return StreamName.task(p.taskID)
        case .requestSent(let p): return StreamName.channel(p.channel)
        case .responseReceived(let p): return StreamName.channel(p.channel)
        case .responseRejected(let p): return StreamName.channel(p.channel)
        case .serverCapacitySet(let p): return StreamName.server(p.serverID)
        case .serverDrainRequested(let p): return StreamName.server(p.serverID)
        case .serverDetachRequested(let p): return StreamName.server(p.serverID)
        case .serverDetached(let p): return StreamName.server(p.serverID)
        case .serverLivenessChanged(let p): return StreamName.server(p.serverID)
        case .taskDispatchWithdrawn(let p): return StreamName.task(p.taskID)
        case .taskRequeued(let p): return StreamName.task(p.taskID)
        case .serverGPUsObserved(let p): return StreamName.server(p.serverID)
        case .transportFailed(let p): return StreamName.channel(p.channel)
        case .channelDesyncDetected(let p): return StreamName.channel(p.channel)
        case .channelQueuesDrained(let p): return StreamName.channel(p.channel)
        case .unrecognisedTaskFound(let p): return StreamName.server(p.serverID)
        case .serverCapacityViolationRefused(let p): return StreamName.server(p.serverID)
        case .serverHealthChanged(let p): return StreamName.server(p.serverID)
        case .taskCancelRequested(let p): return StreamName.task(p.taskID)
        case .taskStartSending(let p): return StreamName.task(p.taskID)
        case .transfer(let t): return StreamName.transfer(t.taskID)
        case .keys(let k): return k.stream
        case .agentInstance(let e): return StreamName.server(e.serverID)
        case .backend: return StreamName.backend
        case .garbageCollected: return StreamName.maintenance
        }
    }
}

/// A payload and the decoder to read it with.
private protocol PayloadSource {
    func decode<P: Decodable>(_ type: P.Type) throws -> P
}

private struct FastPayload: PayloadSource {
    let bytes: UnsafeRawBufferPointer
    func decode<P: Decodable>(_ type: P.Type) throws -> P {
        try DomainEventCodec.payloadLimits.check(bytes)
        return try FastJSONDecoder().decode(P.self, from: bytes)
    }
}

private struct FoundationPayload: PayloadSource {
    let data: Data
    func decode<P: Decodable>(_ type: P.Type) throws -> P {
        try DomainEventCodec.payloadLimits.check(data)
        return try DomainEventCodec.makeDecoder().decode(P.self, from: data)
    }
}
