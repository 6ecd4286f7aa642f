import ArgumentParser
import Domain
import EventStore
import Foundation
import Projections

/// `touchstone debug …`.
struct Debug: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Debug the protocol between the backend and its agents.", subcommands: [DebugChannel.self])
}

/// `touchstone debug channel SERVER/N`: the channel's timeline of requests and responses, matched.
struct DebugChannel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "channel",
        abstract: "Print a channel's timeline: requests, responses, rejected messages, desyncs, queue drains and epochs, marking matches and mismatches.")

    @Argument(help: "The channel, SERVER/N (e.g. gpu-01/1).")
    var channel: String

    @Option(help: "Only the last N entries.")
    var last: Int?

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let parts = channel.split(separator: "/")
        guard parts.count == 2, let server = ServerID(rawValue: String(parts[0])), let index = Int(parts[1]) else {
            throw CLIError("channel must be SERVER/N, e.g. gpu-01/1; got \(channel.debugDescription)")
        }
        let log = try global.openLog()
        let id = ChannelID(server: server, index: index)
        let events = try await log.store.read(stream: StreamName.channel(id)).map(ReadModels.decode)
        let known = try await log.readModel(ChannelSync.self)[id] != nil
        guard !events.isEmpty || known else {
            throw CLIError("unknown channel \(channel): see `touchstone server show \(server)`")
        }
        var sent: [RequestID: (position: Int64, command: String)] = [:]
        var lines: [[String]] = []
        for event in events {
            let time = Render.time(event.recordedAt)
            switch event.event {
            case .requestSent(let e):
                sent[e.requestID] = (event.position, e.command)
                lines.append(["\(event.position)", time, "→ request", "epoch \(e.epoch) seq \(e.sequence)", e.command, e.requestID.rawValue, ""])
            case .responseReceived(let e):
                let match = sent[e.requestID].map { "matches #\($0.position) (\($0.command))" } ?? "MISMATCH: no such request"
                lines.append(["\(event.position)", time, "← response", "epoch \(e.epoch)", e.status + (e.message.map { ": \($0)" } ?? ""), e.requestID.rawValue, match])
            case .responseRejected(let e):
                let known = e.requestID.flatMap { sent[$0] }.map { "for #\($0.position) (\($0.command)), late" } ?? "unknown request"
                lines.append(["\(event.position)", time, "✗ rejected", e.reason, e.bodyPrefix.prefix(40).description, e.requestID?.rawValue ?? "-", known])
            case .channelDesyncDetected(let e):
                let expected = e.expectedRequestID.map { id in
                    sent[id].map { "expected #\($0.position) (\($0.command))" } ?? "expected \(id.rawValue)"
                } ?? "nothing outstanding"
                let got = e.receivedRequestID.map { "got \($0.rawValue) epoch \(e.receivedEpoch ?? -1)" } ?? "no response"
                lines.append(["\(event.position)", time, "!! DESYNC", "epoch \(e.epoch)", e.reason, got, expected])
            case .channelQueuesDrained(let e):
                lines.append([
                    "\(event.position)", time, "⌫ drained", "epoch \(e.fromEpoch) → \(e.toEpoch)",
                    "\(e.requests.count) requests, \(e.responses.count) responses", "-", "",
                ])
                for message in e.requests {
                    lines.append(["", "", "  ⌫ request", message.messageID, message.summary, "-", ""])
                }
                for message in e.responses {
                    lines.append(["", "", "  ⌫ response", message.messageID, message.summary, "-", ""])
                }
            case .transportFailed(let e):
                lines.append(["\(event.position)", time, "✗ transport", e.operation, "\(e.code): \(e.message)", "-", ""])
            default:
                continue
            }
        }
        if let last { lines = Array(lines.suffix(last)) }
        switch global.format {
        case .json:
            struct Line: Encodable { var position, time, direction, detail, status, requestID, match: String }
            print(Render.json(lines.map { Line(position: $0[0], time: $0[1], direction: $0[2], detail: $0[3], status: $0[4], requestID: $0[5], match: $0[6]) }))
        case .table:
            print(Render.table(["POS", "TIME", "WHAT", "EPOCH/SEQ", "COMMAND/STATUS", "REQUEST", "MATCH"], lines))
        }
    }
}
