import Domain
import EventStore
import Foundation
import Projections

/// Rows 6 and 7: end-to-end tasks/s. `agents` real `touchstone-agent`s (servers `bench-01`…, `--max-tasks` each) and
/// one `touchstone serve`, all on the embedded queue with their defaults; once every agent has said hello, `tasks`
/// tasks of `true` are submitted at once (appends of 500, as many `task submit`s would) and the clock runs until the
/// last `task.finished` is in the log. Row 7 is the same with one busy loop per core started before the submit and
/// stopped after the last end.
enum ThroughputBench {
    struct Result {
        var tasks: Int
        var finished: Int
        var seconds: Double
        var counts: [String: Int]
        /// Median milliseconds between a task's consecutive events (by `recorded_at`), over all tasks.
        var phases: [(String, Double)]
        var timedOut: Bool

        var tasksPerSecond: Double? { seconds > 0 && finished > 0 ? Double(finished) / seconds : nil }
        var desyncs: Int { counts["channel.desync-detected"] ?? 0 }
        var livenessFlips: Int { counts["server.liveness-changed"] ?? 0 }
        var drains: Int { counts["channel.queues-drained"] ?? 0 }
    }

    static func run(
        cluster: Cluster, tasks: Int, agents: Int, maxTasks: Int, hogs: Int, timeout: Duration
    ) async throws -> Result {
        let servers = (1...agents).map { String(format: "bench-%02d", $0) }
        for server in servers { try await cluster.attach(server, maxTasks: maxTasks) }
        try cluster.startBackend()
        for server in servers { try cluster.startAgent(server) }
        try await cluster.waitForHello(servers, timeout: .seconds(60))
        let hog = hogs > 0 ? try CPUHog(count: hogs) : nil
        defer { hog?.stop() }
        let clock = ContinuousClock()
        let before = try await cluster.log.store.lastPosition()
        let start = clock.now
        let submitted = Set(try await cluster.submitMany(tasks, command: ["true"]).map(StreamName.task))
        let (ended, done) = await LogWatch.until(cluster.log, after: before, timeout: timeout, initial: Set<String>()) {
            ended, event in
            if event.type == "task.finished", submitted.contains(event.stream) { ended.insert(event.stream) }
            return ended.count == submitted.count
        }
        let elapsed = clock.now - start
        hog?.stop()
        let counts = try await LogWatch.countTypes(cluster.log, after: before)
        let phases = try await phaseMedians(cluster.log, after: before)
        return Result(
            tasks: tasks, finished: ended.count, seconds: elapsed.inSeconds, counts: counts, phases: phases,
            timedOut: !done)
    }

    /// Per task stream, the gaps between consecutive events by `recorded_at`; the median of each gap over all tasks.
    static func phaseMedians(_ log: TouchstoneLog, after position: Int64) async throws -> [(String, Double)] {
        var last: [String: (String, Date)] = [:]
        var gaps: [String: [Double]] = [:]
        var after = position
        while true {
            let batch = try await log.store.read(after: after, limit: 5_000)
            guard let end = batch.last else { break }
            for event in batch where event.stream.hasPrefix("task/") {
                if let previous = last[event.stream] {
                    gaps["\(previous.0)→\(event.type)", default: []].append(
                        event.recordedAt.timeIntervalSince(previous.1) * 1_000)
                }
                last[event.stream] = (event.type, event.recordedAt)
            }
            after = end.position
        }
        return gaps.compactMap { key, values in Stats.median(values).map { (key, $0) } }.sorted { $0.1 > $1.1 }
    }

    /// What the run counted and what dominated, for a row's note.
    static func describe(_ result: Result) -> String {
        let timing = result.timedOut ? "TIMED OUT: \(result.finished) of \(result.tasks) finished; " : ""
        let events = result.counts.values.reduce(0, +)
        let phases = result.phases.prefix(4).map { "\($0.0) \(String(format: "%.0f", $0.1)) ms" }
            .joined(separator: ", ")
        return timing + "\(result.tasks) tasks in \(String(format: "%.1f", result.seconds)) s; \(events) events in the log "
            + "from the submit on (\(result.counts["channel.request.sent"] ?? 0) requests sent, \(result.desyncs) desyncs, "
            + "\(result.drains) queue drains, \(result.livenessFlips) liveness changes); median per-task phases: \(phases)"
    }

    /// Row 6: the value; its Slurm and Celery baselines are filled in by `report` from the peers' lines.
    static func row6(_ result: Result, agents: Int, maxTasks: Int) -> [BenchRow] {
        let metric = "end-to-end tasks/s, \(result.tasks) tasks of `true` over \(agents) agents × --max-tasks \(maxTasks)"
        return [
            BenchRow(row: 6, metric: metric + " vs Slurm", value: result.tasksPerSecond, unit: "tasks/s",
                     goal: ">= 10x", met: nil, note: describe(result)),
            BenchRow(row: 6, metric: metric + " vs Celery (SQS)", value: result.tasksPerSecond, unit: "tasks/s",
                     goal: ">= 2x", met: nil, note: nil),
        ]
    }

    /// Row 7: throughput against row 6's, desyncs and liveness flips.
    static func row7(_ loaded: Result, calm: Result, hogs: Int, smoke: Bool) -> [BenchRow] {
        let throughput = BenchRow(
            row: 7, metric: "tasks/s with both cores saturated (\(hogs) busy loops)", value: loaded.tasksPerSecond,
            unit: "tasks/s", baseline: "row 6 (same run, no load)", baselineValue: calm.tasksPerSecond,
            goal: ">= 0.5x", met: nil, note: describe(loaded))
        var judged = throughput
        if !smoke, let ratio = throughput.ratio { judged.met = ratio >= 0.5 }
        return [
            judged,
            BenchRow(
                row: 7, metric: "channel.desync-detected under load", value: Double(loaded.desyncs), unit: "events",
                goal: "= 0", met: smoke ? nil : loaded.desyncs == 0,
                note: "without load (row 6): \(calm.desyncs)"),
            BenchRow(
                row: 7, metric: "server.liveness-changed under load", value: Double(loaded.livenessFlips),
                unit: "events", goal: "= 0", met: smoke ? nil : loaded.livenessFlips == 0,
                note: "without load (row 6): \(calm.livenessFlips)"),
        ]
    }
}
