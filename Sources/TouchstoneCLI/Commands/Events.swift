import ArgumentParser
import Domain
import EventStore
import Foundation
import Transport
import Projections

/// One event as printed by the CLI.
struct EventLine: Encodable {
    var position: Int64
    var recordedAt: Date
    var stream: String
    var version: Int64
    var type: String
    var schema: Int
    var actor: String
    var correlationID: String?
    var payload: String

    init(_ event: StoredEvent) {
        position = event.position
        recordedAt = event.recordedAt
        stream = event.stream
        version = event.version
        type = event.type
        schema = event.schema
        actor = event.metadata.actor
        correlationID = event.metadata.correlationID
        payload = String(decoding: event.payload, as: UTF8.self)
    }
}

/// `touchstone events`: print or tail the log, filtered by stream.
struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the event log, filtered by stream; --follow tails it.")

    @OptionGroup var global: GlobalOptions

    @Option(help: "Only this stream (e.g. task/tsk-…, server/gpu-07), or streams starting with it when it ends in /.")
    var stream: String?

    @Option(help: "Only events after this position.")
    var after: Int64 = 0

    @Option(help: "At most this many events (without --follow).")
    var limit: Int = 10_000

    @Flag(help: "Keep printing new events as they are appended (Ctrl-C to stop).")
    var follow = false

    @Flag(help: "Print only the number of events.")
    var count = false

    func matches(_ event: StoredEvent) -> Bool {
        guard let stream else { return true }
        return stream.hasSuffix("/") ? event.stream.hasPrefix(stream) : event.stream == stream
    }

    func run() async throws {
        let log = try global.openLog()
        if count {
            var total = 0
            var position = after
            while true {
                let batch = try await log.store.read(after: position, limit: 5_000)
                guard let last = batch.last else { break }
                total += batch.filter(matches).count
                position = last.position
            }
            print(global.format == .json ? Render.json(["count": total]) : "\(total)")
            return
        }
        if follow {
            for try await event in log.store.tail(after: after) where matches(event) {
                // Unbuffered, so that a pipe sees each event as it is appended.
                FileHandle.standardOutput.write(Data((line(event) + "\n").utf8))
            }
            return
        }
        var printed = 0
        var position = after
        var collected: [EventLine] = []
        while printed < limit {
            let batch = try await log.store.read(after: position, limit: 1_000)
            guard let last = batch.last else { break }
            for event in batch where matches(event) && printed < limit {
                if global.format == .json { collected.append(EventLine(event)) } else { print(line(event)) }
                printed += 1
            }
            position = last.position
        }
        if global.format == .json { print(Render.json(collected)) }
    }

    func line(_ event: StoredEvent) -> String {
        if global.format == .json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            encoder.dateEncodingStrategy = .iso8601
            return String(decoding: (try? encoder.encode(EventLine(event))) ?? Data(), as: UTF8.self)
        }
        let payload = String(decoding: event.payload, as: UTF8.self)
        let short = payload.count > 160 ? String(payload.prefix(157)) + "..." : payload
        return "\(event.position)  \(Render.time(event.recordedAt))  \(event.stream)  \(event.type)  \(event.metadata.actor)  \(short)"
    }
}
