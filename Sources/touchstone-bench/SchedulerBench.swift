import Domain
import EventStore
import Foundation
import Orchestrator
import Projections

/// Rows 8 and 9: the scheduler in-process.
enum SchedulerBench {
    /// Row 8: `Scheduler.plan` over `servers` attached servers (`--max-tasks` enough for all) and `tasks` queued tasks,
    /// built by folding the events an operator's attaches and submits append. Times the median of `repeats` plans.
    static func placements(servers: Int, tasks: Int, repeats: Int, smoke: Bool) -> [BenchRow] {
        var set = ProjectionSet(position: 0, servers: .init(), tasks: .init(), channels: .init())
        var position: Int64 = 0
        let now = Date()
        func apply(_ event: DomainEvent, stream: String) {
            position += 1
            set.apply(RecordedEvent(position: position, stream: stream, version: 1, recordedAt: now, actor: "bench", event: event))
        }
        let perServer = (tasks + servers - 1) / servers
        var ids: [ServerID] = []
        for index in 0..<servers {
            let server = ServerID(rawValue: String(format: "srv-%05d", index))!
            ids.append(server)
            apply(.serverAttached(ServerAttached(serverID: server, maxTasks: perServer, channels: 3)), stream: "server/\(server)")
        }
        for index in 0..<tasks {
            let task = TaskID(rawValue: String(format: "tsk-%012x", index))
            apply(.taskSubmitted(TaskSubmitted(taskID: task, spec: TaskSpec(command: ["true"]))), stream: "task/\(task)")
        }
        let eligible = Set(ids)
        // The backend's pure step: the queue comes ordered from the indexed `task_queue` table, the server rows as they
        // are stored.
        let queue = Scheduler.queue(set.tasks)
        let rows = Array(set.servers.rows.values)
        let clock = ContinuousClock()
        var times: [Double] = []
        var placed = 0
        for _ in 0..<repeats {
            let start = clock.now
            let plan = Scheduler.plan(queue: queue, servers: rows, eligible: eligible)
            times.append((clock.now - start).inSeconds)
            placed = plan.count
        }
        let seconds = Stats.median(times) ?? 0
        let rate = seconds > 0 ? Double(placed) / seconds : nil
        return [
            BenchRow(
                row: 8, metric: "scheduler placements/s, \(servers) servers × \(tasks) queued tasks (in-process)",
                value: rate, unit: "placements/s", goal: ">= 20,000/s", met: smoke ? nil : rate.map { $0 >= 20_000 },
                note: "\(placed) placed in one Scheduler.plan of \(String(format: "%.1f", seconds * 1_000)) ms "
                    + "(median of \(repeats))")
        ]
    }

    /// A log at `path` holding one server (`bench-01`, max 8) and `finished` tasks that ran and succeeded on it,
    /// written in appends of 500 tasks (2,000 events) through ``TouchstoneLog``; then 8 queued tasks, so that a
    /// decision has something to place.
    static func buildHistory(path: String, finished: Int) async throws -> TouchstoneLog {
        let log = try TouchstoneLog(path: path)
        let server = ServerID(rawValue: "bench-01")!
        let meta = EventMetadata(actor: "bench")
        try await log.append(.serverAttached(ServerAttached(serverID: server, maxTasks: 8, channels: 3)), metadata: meta)
        var index = 0
        while index < finished {
            var appends: [TouchstoneLog.Append] = []
            for _ in index..<min(finished, index + 500) {
                let task = TaskID.random()
                let request = RequestID.make()
                let now = Date()
                appends += [
                    .init(.taskSubmitted(TaskSubmitted(taskID: task, spec: TaskSpec(command: ["true"]))), metadata: meta),
                    .init(.taskDispatched(TaskDispatched(taskID: task, attempt: 1, serverID: server, requestID: request)),
                          metadata: meta),
                    .init(.taskStarted(TaskStarted(taskID: task, attempt: 1, serverID: server, pid: 1, startedAt: now)),
                          metadata: meta),
                    .init(.taskFinished(TaskFinished(taskID: task, attempt: 1, serverID: server, outcome: .succeeded,
                                                     exitCode: 0, endedAt: now)), metadata: meta),
                ]
            }
            try await log.append(appends)
            index += appends.count / 4
        }
        for _ in 0..<8 {
            try await log.append(
                .taskSubmitted(TaskSubmitted(taskID: .random(), spec: TaskSpec(command: ["true"]))),
                expectedVersion: .noStream, metadata: meta)
        }
        return log
    }

    /// One scheduling decision as the backend makes it: today `log.snapshot()` (every read model, decoded) and
    /// `Scheduler.plan` with the server eligible. The one place to change when the backend reads indexed rows instead.
    ///
    /// - Returns: The placements made (8 with ``buildHistory(path:finished:)``'s log).
    static func decisionCost(log: TouchstoneLog) async throws -> Int {
        // The backend's own decision: the server rows, then the head of the indexed queue.
        let servers = try await log.serverRows()
        return try await Backend.decide(
            log: log, servers: servers, eligible: Set(servers.map(\.serverID)), packing: .pack
        ).placements.count
    }

    /// Row 9: the median of `repeats` decisions for each history size; baseline the smallest.
    static func decisions(sizes: [Int], repeats: Int, directory: String, smoke: Bool) async throws -> [BenchRow] {
        let clock = ContinuousClock()
        var medians: [(Int, Double, Int, Double)] = []
        for size in sizes {
            let buildStart = clock.now
            let log = try await buildHistory(path: directory + "/history-\(size).db", finished: size)
            let built = (clock.now - buildStart).inSeconds
            var times: [Double] = []
            var placed = 0
            _ = try await decisionCost(log: log)  // warm: page cache, statements
            for _ in 0..<repeats {
                let start = clock.now
                placed = try await decisionCost(log: log)
                times.append((clock.now - start).inMilliseconds)
            }
            medians.append((size, Stats.median(times) ?? 0, placed, built))
        }
        guard let base = medians.first else { return [] }
        return medians.map { size, ms, placed, built in
            var row = BenchRow(
                row: 9, metric: "one scheduling decision, \(size) finished tasks in the history", value: ms, unit: "ms",
                baseline: "the \(base.0)-task history", baselineValue: base.1, goal: "<= 1.5x",
                met: nil,
                note: "median of \(repeats); \(placed) placed; history of \(size * 4 + 9) events built in "
                    + String(format: "%.1f s", built))
            if !smoke, size != base.0, let ratio = row.ratio { row.met = ratio <= 1.5 }
            return row
        }
    }
}
