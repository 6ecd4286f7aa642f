import ArgumentParser
import Domain
import Foundation
import EventStore
import Transport
import Projections

/// `touchstone server show NAME`.
struct ServerShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show one server: capacity, booked tasks, channels.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The server's name.")
    var name: String

    func run() async throws {
        let log = try global.openLog()
        let snapshot = try await log.snapshot()
        guard let server = ServerID(rawValue: name), let row = snapshot.servers[server] else {
            throw CLIError("unknown server \(name.debugDescription): see `touchstone server list`")
        }
        let channels = (0..<row.channels).compactMap { snapshot.channels[ChannelID(server: server, index: $0)] }
        switch global.format {
        case .json:
            struct Shown: Encodable {
                var server: ServerRow
                var channels: [ChannelRow]
            }
            print(Render.json(Shown(server: row, channels: channels)))
        case .table:
            print("server       \(row.serverID)")
            print("state        \(row.state.rawValue)")
            print("capacity     \(row.booked.count) booked of max \(row.maxTasks) (\(row.running.count) running)")
            print("agent        \(row.agentVersion ?? "-"), clock skew \(row.clockSkewMilliseconds.map { "\($0) ms" } ?? "-")")
            print("last contact \(Render.time(row.lastContact))")
            print("booked       \(row.booked.isEmpty ? "-" : row.booked.map(\.description).joined(separator: ", "))")
            print("")
            print(
                Render.table(
                    ["CHANNEL", "EPOCH", "SENT", "RECEIVED", "REJECTED", "OUTSTANDING"],
                    channels.map {
                        [
                            $0.channel.description, "\($0.epoch)", "\($0.requestsSent)", "\($0.responsesReceived)",
                            "\($0.responsesRejected)", $0.outstanding.map { "\($0.command) \($0.requestID)" } ?? "-",
                        ]
                    }))
        }
    }
}
