import ArgumentParser
import Domain
import Foundation
import Projections

/// `touchstone server list [--watch]`.
struct ServerList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List servers with their state, capacity, GPUs and drain progress.")

    @Flag(help: "Refresh every second until interrupted.")
    var watch = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let log = try global.openLog()
        repeat {
            let snapshot = try await log.snapshot()
            let servers = snapshot.servers.rows.values.sorted { $0.serverID < $1.serverID }
            if watch && isatty(1) != 0 { print("\u{1B}[2J\u{1B}[H", terminator: "") }
            switch global.format {
            case .json:
                print(Render.json(servers))
            case .table:
                print(
                    Render.table(
                        ["SERVER", "STATE", "BOOKED", "MAX", "RUNNING", "GPUS FREE", "DRAIN", "LAST CONTACT", "LABELS"],
                        servers.map { row in
                            [
                                row.serverID.rawValue, ServerShow.stateSummary(row), "\(row.booked.count)", "\(row.maxTasks)",
                                "\(row.running.count)", "\(row.freeGPUs.count)/\(row.gpus.count)",
                                ServerShow.drainSummary(row, tasks: snapshot.tasks), Render.time(row.lastContact),
                                (row.labels ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                                    .joined(separator: ",").nilIfEmpty ?? "-",
                            ]
                        }))
            }
            if watch {
                fflush(nil)  // a pipe sees each refresh
                try await Task.sleep(for: .seconds(1))
            }
        } while watch
    }
}
