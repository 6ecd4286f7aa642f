import ArgumentParser
import Foundation
import EventStore
import Transport
import Domain
import Projections

/// `touchstone server list`.
struct ServerList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List servers with their state and capacity.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let log = try global.openLog()
        let servers = try await log.readModel(ServerCapacity.self).rows.values.sorted { $0.serverID < $1.serverID }
        switch global.format {
        case .json:
            print(Render.json(servers))
        case .table:
            print(
                Render.table(
                    ["SERVER", "STATE", "BOOKED", "MAX", "RUNNING", "AGENT", "LAST CONTACT"],
                    servers.map {
                        [
                            $0.serverID.rawValue, $0.state.rawValue, "\($0.booked.count)", "\($0.maxTasks)",
                            "\($0.running.count)", $0.agentVersion ?? "-", Render.time($0.lastContact),
                        ]
                    }))
        }
    }
}
