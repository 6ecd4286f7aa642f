import ArgumentParser
import Domain
import EventStore
import Foundation
import Projections

/// `touchstone replay --at POSITION|TIME [--server S] [--task T]`: the projections as of a point in the log.
struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the projections as of a log position or a time, folded from position 0.",
        discussion: "Example: touchstone replay --at 120 --server gpu-01; touchstone replay --at 2026-11-29T09:30:00Z")

    @Option(help: "A log position (e.g. 120) or an ISO 8601 time (e.g. 2026-11-29T09:30:00Z).")
    var at: String

    @Option(help: "Only this server.")
    var server: String?

    @Option(help: "Only this task.")
    var task: String?

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let log = try global.openLog()
        let position: Int64
        if let number = Int64(at), number >= 0 {
            position = number
        } else if let date = Self.parseTime(at) {
            position = try await log.store.lastPosition(before: date)
        } else {
            throw CLIError("--at takes a position or an ISO 8601 time, got \(at.debugDescription)")
        }
        let state = try await log.replay(upTo: position)
        let servers = state.servers.rows.values.filter { server == nil || $0.serverID.rawValue == server }
            .sorted { $0.serverID < $1.serverID }
        let tasks = state.tasks.rows.values.filter { task == nil || $0.taskID.rawValue == task }
            .filter { server == nil || $0.serverID?.rawValue == server || task != nil }
            .sorted { ($0.submittedAt, $0.taskID) < ($1.submittedAt, $1.taskID) }
        let channels = state.channels.rows.values.filter { server == nil || $0.channel.server.rawValue == server }
            .sorted { $0.channel < $1.channel }
        switch global.format {
        case .json:
            struct Shown: Encodable {
                var position: Int64
                var servers: [ServerRow]
                var tasks: [TaskRow]
                var channels: [ChannelRow]
            }
            print(Render.json(Shown(position: state.position, servers: servers, tasks: tasks, channels: channels)))
        case .table:
            print("as of position \(state.position)\n")
            print(
                Render.table(
                    ["SERVER", "STATE", "BOOKED", "MAX", "REACHABLE"],
                    servers.map { [$0.serverID.rawValue, $0.state.rawValue, "\($0.booked.count)", "\($0.maxTasks)", "\($0.reachable)"] }))
            print("")
            print(
                Render.table(
                    ["TASK", "STATE", "SERVER", "ATTEMPT", "REQUEST"],
                    tasks.map { [$0.taskID.rawValue, $0.status.rawValue, $0.serverID?.rawValue ?? "-", "\($0.attempt)", $0.requestID?.rawValue ?? "-"] }))
            print("")
            print(
                Render.table(
                    ["CHANNEL", "EPOCH", "SEQ", "OUTSTANDING"],
                    channels.map { [$0.channel.description, "\($0.epoch)", "\($0.lastSequence)", $0.outstanding.map { "\($0.command) \($0.requestID)" } ?? "-"] }))
        }
    }

    static func parseTime(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }
}
