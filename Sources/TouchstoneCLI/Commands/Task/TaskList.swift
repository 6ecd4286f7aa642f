import ArgumentParser
import Foundation
import EventStore
import Transport
import Domain
import Projections

/// `touchstone task list [--status S]… [--sort KEY] [--limit N] [--watch]`.
struct TaskList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List tasks with their status, oldest first (--sort, --limit, --watch).")

    /// What `--sort` orders by.
    enum SortKey: String, ExpressibleByArgument, CaseIterable {
        case submitted, status, name, priority, server
    }

    @Option(
        help: ArgumentHelp(
            "Only tasks with this status (repeatable: any of them): \(TaskStatus.allCases.map(\.rawValue).joined(separator: ", ")).",
            valueName: "status"))
    var status: [String] = []

    @Option(help: "Order by submitted (default), status, name, priority (highest first) or server.")
    var sort: SortKey = .submitted

    @Flag(help: "Reverse the order (e.g. newest first).")
    var reverse = false

    @Option(help: "At most N tasks: the newest N when sorted by submission (the default), else the first N of the order (--sort priority --limit 5: the five of highest priority).")
    var limit: Int?

    @Flag(help: "Refresh when a task changes, until interrupted.")
    var watch = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        for value in status where TaskStatus(rawValue: value) == nil {
            throw CLIError(Self.unknownStatus(value))
        }
        if let limit, limit < 1 { throw ValidationError("--limit must be 1 or more") }
    }

    /// The one-line error for a status that does not exist, listing the ones that do.
    static func unknownStatus(_ value: String) -> String {
        "unknown status \(value.debugDescription)\(Suggestions.hint(for: value, among: TaskStatus.allCases.map(\.rawValue)))"
            + "; valid: \(TaskStatus.allCases.map(\.rawValue).joined(separator: ", "))"
    }

    /// The rows to show: filtered by any of `statuses` (none: all), ordered, then `limit` of them: the newest when the
    /// order is by submission (in either direction), else the first of the order. Pure.
    static func select(
        _ rows: [TaskRow], statuses: Set<TaskStatus>, sort: SortKey, reverse: Bool, limit: Int?
    ) -> [TaskRow] {
        let order = TaskStatus.allCases
        let filtered = rows.filter { statuses.isEmpty || statuses.contains($0.status) }
        var sorted = filtered.sorted { a, b in
            let tie = (a.submittedAt, a.taskID) < (b.submittedAt, b.taskID)
            switch sort {
            case .submitted: return tie
            case .status:
                let (x, y) = (order.firstIndex(of: a.status)!, order.firstIndex(of: b.status)!)
                return x != y ? x < y : tie
            case .name: return a.name != b.name ? (a.name ?? "") < (b.name ?? "") : tie
            case .priority: return a.priority != b.priority ? a.priority > b.priority : tie
            case .server:
                let (x, y) = (a.serverID?.rawValue ?? "", b.serverID?.rawValue ?? "")
                return x != y ? x < y : tie
            }
        }
        if reverse { sorted.reverse() }
        if let limit, sorted.count > limit {
            // By submission the interesting end is the newest (last, or first when reversed); by any other key it is
            // the head of the order (highest priority, first status, …).
            sorted = Array(sort == .submitted && !reverse ? sorted.suffix(limit) : sorted.prefix(limit))
        }
        return sorted
    }

    func run() async throws {
        let log = try global.openLog()
        let statuses = Set(status.compactMap(TaskStatus.init(rawValue:)))
        var position = try await log.store.lastPosition()
        repeat {
            let tasks = Self.select(
                Array(try await log.readModel(TaskBoard.self).rows.values), statuses: statuses, sort: sort,
                reverse: reverse, limit: limit)
            if watch && isatty(1) != 0 { print("\u{1B}[2J\u{1B}[H", terminator: "") }
            switch global.format {
            case .json:
                print(Render.json(tasks))
            case .table:
                print(
                    Render.table(
                        ["TASK", "NAME", "STATUS", "SERVER", "ATTEMPT", "DURATION", "EXIT", "COMMAND"],
                        tasks.map {
                            [
                                $0.taskID.rawValue, $0.name ?? "-", $0.status.rawValue, $0.serverID?.rawValue ?? "-",
                                "\($0.attempt)", Render.duration(from: $0.startedAt, to: $0.finishedAt),
                                $0.exitCode.map(String.init) ?? "-", ShellQuoting.join($0.command),
                            ]
                        }))
            }
            if watch {
                fflush(nil)  // a pipe sees each refresh
                // The next refresh waits for the next task event (the log's tail), not for a timer.
                for try await event in log.store.tail(after: position) {
                    position = event.position
                    if event.stream.hasPrefix("task/") { break }
                }
            }
        } while watch
    }
}
