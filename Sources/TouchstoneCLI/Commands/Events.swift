import ArgumentParser
import Domain
import EventStore
import Foundation
import InputLimits
import Transport
import Projections

/// A JSON value, to print a stored payload as the object it is rather than as a string holding JSON.
enum JSONValue: Codable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// The stored payload bytes as a value; a payload that is not JSON, or over the log's
    /// ``DomainEventCodec/payloadLimits``, becomes its text.
    init(payload: Data) {
        let fits = (try? DomainEventCodec.payloadLimits.check(payload)) != nil
        self =
            (fits ? try? JSONDecoder().decode(JSONValue.self, from: payload) : nil)
            ?? .string(String(decoding: payload, as: UTF8.self))
    }

    /// The string under `key` of an object.
    subscript(key: String) -> String? {
        guard case .object(let object) = self, case .string(let value)? = object[key] else { return nil }
        return value
    }
}

/// One event as printed by the CLI: every field, times in ISO 8601, the payload as a JSON object.
struct EventLine: Encodable {
    var position: Int64
    var recordedAt: Date
    var stream: String
    var version: Int64
    var type: String
    var schema: Int
    var actor: String
    var correlationID: String?
    var payload: JSONValue

    init(_ event: StoredEvent) {
        position = event.position
        recordedAt = event.recordedAt
        stream = event.stream
        version = event.version
        type = event.type
        schema = event.schema
        actor = event.metadata.actor
        correlationID = event.metadata.correlationID
        payload = JSONValue(payload: Self.displayPayload(event))
    }

    /// The payload as the CLI shows it: decoded as its event type and encoded again with times in ISO 8601 (the log
    /// stores Unix milliseconds); the stored bytes when this build does not know the type.
    static func displayPayload(_ event: StoredEvent) -> Data {
        guard
            let decoded = try? DomainEventCodec.decode(
                type: event.type, schema: event.schema, payload: event.payload, position: event.position)
        else { return event.payload }
        return DomainEventCodec.encode(decoded, encoder: Render.displayEncoder()).payload
    }
}

/// `--since` / `--until` values: an ISO 8601 time, or a duration before now such as `90s`, `10m`, `2h`, `1d`.
enum TimeArgument {
    /// The instant `text` names, `nil` when it is neither form.
    static func parse(_ text: String, now: Date) -> Date? {
        if let unit = text.last, let amount = Double(text.dropLast()), amount >= 0 {
            let seconds: Double? =
                switch unit {
                case "s": 1
                case "m": 60
                case "h": 3_600
                case "d": 86_400
                case "w": 604_800
                default: nil
                }
            if let seconds { return now.addingTimeInterval(-amount * seconds) }
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withFullDate]
        return formatter.date(from: text)
    }
}

/// `touchstone events`: print or tail the log, filtered by stream, type, time, server or task.
struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the newest events of the log (--tail N), filtered by stream, type, time, server or task; --follow tails it.")

    @Option(help: "Only events whose type starts with this, e.g. task. or server.drain (repeatable: any of them).")
    var type: [String] = []

    @Option(help: "Only events of this task's stream or naming it (its ID or a unique prefix).")
    var task: String?

    @Option(help: "Only events of this server's stream and channels, or naming it.")
    var server: String?

    @Option(help: "Only this stream (e.g. task/tsk-…, server/gpu-07), or streams starting with it when it ends in /.")
    var stream: String?

    @Option(help: "Only events at or after this time: ISO 8601 (2026-12-01T10:00:00Z) or a duration ago (90s, 10m, 2h, 1d).")
    var since: String?

    @Option(help: "Only events at or before this time: ISO 8601 or a duration ago.")
    var until: String?

    @Option(help: "The newest N matching events (default 50; 0: all of them).")
    var tail: Int = 50

    @Option(help: "Only events after this position.")
    var after: Int64 = 0

    @Flag(help: "Keep printing new matching events as they are appended (Ctrl-C to stop).")
    var follow = false

    @Flag(help: "Print only the number of matching events.")
    var count = false

    @OptionGroup var global: GlobalOptions

    /// The filters, resolved against the log.
    struct Filter {
        var types: [String] = []
        var stream: String?
        var task: TaskID?
        var server: ServerID?
        var since: Date?
        var until: Date?

        func matches(_ event: StoredEvent) -> Bool {
            if !types.isEmpty, !types.contains(where: { event.type.hasPrefix($0) }) { return false }
            if let stream, !(stream.hasSuffix("/") ? event.stream.hasPrefix(stream) : event.stream == stream) {
                return false
            }
            if let since, event.recordedAt < since { return false }
            if let until, event.recordedAt > until { return false }
            if task != nil || server != nil {
                let payload = JSONValue(payload: event.payload)
                if let task, event.stream != StreamName.task(task), payload["taskID"] != task.rawValue { return false }
                if let server, event.stream != StreamName.server(server), !event.stream.hasPrefix("channel/\(server)/"),
                    payload["serverID"] != server.rawValue
                {
                    return false
                }
            }
            return true
        }
    }

    func validate() throws {
        guard tail >= 0 else { throw ValidationError("--tail must be 0 or more") }
        for (name, value) in [("--since", since), ("--until", until)] {
            if let value, TimeArgument.parse(value, now: Date()) == nil {
                throw CLIError("\(name) takes an ISO 8601 time (2026-12-01T10:00:00Z) or a duration ago (90s, 10m, 2h, 1d), got \(value.debugDescription)")
            }
        }
    }

    /// Resolves `--task`, `--server` and `--stream` against the log.
    ///
    /// - Throws: ``CLIError`` for an unknown task, server or stream.
    func filter(_ log: TouchstoneLog) async throws -> Filter {
        let now = Date()
        var filter = Filter(
            types: type, stream: stream, since: since.flatMap { TimeArgument.parse($0, now: now) },
            until: until.flatMap { TimeArgument.parse($0, now: now) })
        if let task { filter.task = try await log.resolveTask(task) }
        if let server {
            guard let id = ServerID(rawValue: server), try await log.readModel(ServerCapacity.self)[id] != nil else {
                throw CLIError("unknown server \(server.debugDescription): see `touchstone server list`")
            }
            filter.server = id
        }
        if let stream {
            let known: Bool
            if stream.hasSuffix("/") {
                known = !(try await log.store.read(streamPrefix: stream, limit: 1)).isEmpty
            } else {
                known = try await log.store.version(of: stream) > 0
            }
            guard known else {
                throw CLIError(
                    "unknown stream \(stream.debugDescription): streams are task/<id>, server/<name>, channel/<name>/<n> (or a prefix ending in /)")
            }
        }
        return filter
    }

    func run() async throws {
        let log = try global.openLog()
        let filter = try await filter(log)
        var matched: [StoredEvent] = []
        var total = 0
        var position = after
        while true {
            let batch = try await log.store.read(after: position, limit: 5_000)
            guard let last = batch.last else { break }
            for event in batch where filter.matches(event) {
                total += 1
                guard !count else { continue }
                matched.append(event)
                // Only the newest `tail` are kept while scanning.
                if tail > 0, matched.count > 2 * tail { matched.removeFirst(matched.count - tail) }
            }
            position = last.position
        }
        if count {
            print(global.format == .json ? Render.json(["count": total]) : "\(total)")
            return
        }
        if tail > 0, matched.count > tail { matched.removeFirst(matched.count - tail) }
        if global.format == .json && !follow {
            print(Render.json(matched.map(EventLine.init)))
            return
        }
        for event in matched { print(line(event)) }
        guard follow else { return }
        fflush(nil)
        for try await event in log.store.tail(after: position) where filter.matches(event) {
            // Unbuffered, so that a pipe sees each event as it is appended.
            FileHandle.standardOutput.write(Data((line(event) + "\n").utf8))
        }
    }

    /// One event on one line: a JSON object (`--format json`, as `--follow` prints them) or the table's columns.
    func line(_ event: StoredEvent) -> String {
        if global.format == .json { return Render.jsonLine(EventLine(event)) }
        let payload = String(decoding: EventLine.displayPayload(event), as: UTF8.self)
        let short = payload.count > 160 ? String(payload.prefix(157)) + "..." : payload
        return "\(event.position)  \(Render.time(event.recordedAt))  \(event.stream)  \(event.type)  \(event.metadata.actor)  \(short)"
    }
}
