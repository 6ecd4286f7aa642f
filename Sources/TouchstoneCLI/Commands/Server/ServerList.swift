import EventStore
import ArgumentParser
import Domain
import Foundation
import Projections

/// `touchstone server list [--watch]`.
struct ServerList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List servers with their state, capacity, GPUs and drain progress.")

    @Flag(help: "Refresh at each change in the log, and every 5 s for the clocks shown, until interrupted.")
    var watch = false

    @OptionGroup var global: GlobalOptions

    /// The longest a `--watch` view goes without a refresh: its relative times move even when nothing is logged.
    static let clockRefresh = Duration.seconds(5)

    func run() async throws {
        let log = try global.openLog()
        var position = try await log.store.lastPosition()
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
            if let down = try await BackendStatus.read(stateDirectory: global.resolvedStateDir, log: log).downLine {
                // After the table (or on stderr, so the JSON stays one array).
                if global.format == .json {
                    FileHandle.standardError.write(Data((down + "\n").utf8))
                } else {
                    print(down)
                }
            }
            if watch {
                fflush(nil)  // a pipe sees each refresh
                // The next refresh comes with the next event in the log (another process's append wakes it within
                // milliseconds), and at least every few seconds for the clocks shown (last contact, deadlines).
                position = try await log.store.waitForAppend(after: position, timeout: Self.clockRefresh)
            }
        } while watch
    }
}
