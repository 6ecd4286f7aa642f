import EventStore
import ArgumentParser
import Domain
import Foundation
import Projections

/// `touchstone server show NAME [--watch]`.
struct ServerShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show one server: capacity, drain progress, GPUs, booked tasks, channels.")

    @Argument(help: "The server's name.")
    var name: String

    @Flag(help: "Refresh at each change in the log, and every 5 s for the clocks shown, until interrupted.")
    var watch = false

    @OptionGroup var global: GlobalOptions

    /// The longest a `--watch` view goes without a refresh: its relative times move even when nothing is logged.
    static let clockRefresh = Duration.seconds(5)

    /// `2 left of 3, deadline in 40s` / `done` / `-`.
    /// The lifecycle state, and why the server is unhealthy when it is (`attached, unhealthy: clock skew 6m`).
    static func stateSummary(_ row: ServerRow) -> String {
        row.state.rawValue + (row.unhealthy.map { ", unhealthy: \($0)" } ?? "")
    }

    static func drainSummary(_ row: ServerRow, tasks: TaskBoard) -> String {
        guard let drain = row.drain else { return "-" }
        if row.booked.isEmpty { return "done" }
        var text = "\(row.booked.count) left of \(drain.tasksAtStart)"
        if let deadline = drain.deadline {
            let remaining = Int(deadline.timeIntervalSinceNow.rounded())
            text += remaining > 0 ? ", deadline in \(remaining)s" : ", deadline passed: stopping"
        }
        return text
    }

    func run() async throws {
        let log = try global.openLog()
        var position = try await log.store.lastPosition()
        repeat {
            let snapshot = try await log.snapshot()
            guard let server = ServerID(rawValue: name), let row = snapshot.servers[server] else {
                throw CLIError("unknown server \(name.debugDescription): see `touchstone server list`")
            }
            if watch && isatty(1) != 0 { print("\u{1B}[2J\u{1B}[H", terminator: "") }
            render(row, snapshot)
            if watch {
                fflush(nil)  // a pipe sees each refresh
                // The next refresh comes with the next event in the log (another process's append wakes it within
                // milliseconds), and at least every few seconds for the clocks shown (last contact, deadlines).
                position = try await log.store.waitForAppend(after: position, timeout: Self.clockRefresh)
            }
        } while watch
    }

    func render(_ row: ServerRow, _ snapshot: ProjectionSet) {
        let channels = (0..<row.channels).compactMap { snapshot.channels[ChannelID(server: row.serverID, index: $0)] }
        let booked = row.booked.map { attempt -> BookedTask in
            let task = snapshot.tasks[attempt.taskID]
            return BookedTask(
                attempt: attempt.description, status: task?.status.rawValue ?? "-",
                age: Render.duration(from: task?.startedAt ?? task?.dispatchedAt, to: nil),
                gpus: row.gpuBookings.filter { $0.attempt == attempt }.map(\.index))
        }
        switch global.format {
        case .json:
            struct Shown: Encodable {
                var server: ServerRow
                var freeGPUs: [Int]
                var tasks: [BookedTask]
                var channels: [ChannelRow]
            }
            print(Render.json(Shown(server: row, freeGPUs: row.freeGPUs, tasks: booked, channels: channels)))
        case .table:
            print("server       \(row.serverID)")
            print("state        \(Self.stateSummary(row))\(row.reachable ? "" : " since \(Render.time(row.unreachableSince))")")
            print("capacity     \(row.booked.count) booked of max \(row.maxTasks) (\(row.running.count) running)")
            if let drain = row.drain {
                print("drain        \(Self.drainSummary(row, tasks: snapshot.tasks)); by \(drain.requestedBy) at "
                    + "\(Render.time(drain.requestedAt))\(drain.reason.map { ", reason: \($0)" } ?? "")")
            }
            if let detach = row.detachRequested {
                print("detach       requested by \(detach.requestedBy)\(detach.force ? " (forced)" : "")")
            }
            let busy = row.foreignBusyGPUs
            print("gpus         \(row.gpus.count) total, free \(row.freeGPUs.map(String.init).joined(separator: ",").ifEmpty("-"))"
                + (busy.isEmpty ? "" : ", busy with other users' processes: \(busy.map(String.init).joined(separator: ","))")
                + (row.gpuProblem.map { " (\($0))" } ?? ""))
            print("agent        \(row.agentVersion ?? "-"), clock skew \(row.clockSkewMilliseconds.map { "\($0) ms" } ?? "-")")
            print("instance     \(row.agentInstance ?? "-")")
            if let fenced = row.fencedInstance {
                print("fenced       \(fenced): a second agent answered for this server and was told to stop")
            }
            print("last contact \(Render.time(row.lastContact))")
            print("")
            print(
                Render.table(
                    ["TASK", "STATUS", "AGE", "GPUS"],
                    booked.map { [$0.attempt, $0.status, $0.age, $0.gpus.map(String.init).joined(separator: ",").ifEmpty("-")] }))
            print("")
            print(
                Render.table(
                    ["CHANNEL", "EPOCH", "SENT", "RECEIVED", "REJECTED", "DESYNCS", "DRAINED", "QUEUE ERRORS", "OUTSTANDING"],
                    channels.map {
                        [
                            $0.channel.description, "\($0.epoch)", "\($0.requestsSent)", "\($0.responsesReceived)",
                            "\($0.responsesRejected)",
                            $0.desyncs == 0 ? "0" : "\($0.desyncs) (last: \($0.lastDesync ?? "-"))",
                            "\($0.drainedMessages) in \($0.drains)",
                            $0.transportFailures == 0 ? "0" : "\($0.transportFailures) (last: \($0.lastTransportError ?? "-"))",
                            $0.outstanding.map { "\($0.command) \($0.requestID)" } ?? "-",
                        ]
                    }))
        }
    }
}

/// One booked task as `server show` lists it.
struct BookedTask: Encodable {
    var attempt: String
    var status: String
    var age: String
    var gpus: [Int]
}

extension String {
    func ifEmpty(_ replacement: String) -> String { isEmpty ? replacement : self }
}
