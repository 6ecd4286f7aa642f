import Domain
import EventStore
import Foundation
import Projections

/// Rows 4 and 5: submit → `task.started` and submit → `task.finished` of tasks of `true`, one at a time, on a real
/// `touchstone serve` and one `touchstone-agent` (process runtime, every option at its default).
///
/// Each sample: note the log's last position, start the clock, append the `task.submitted` as `task submit` does,
/// then follow the log's tail until the task's `task.started` (stop the first timer) and `task.finished` (the second)
/// are visible; then the next task. Three tasks first warm the processes up and are not counted.
enum LatencyBench {
    struct Sample {
        var started: Double
        var finished: Double
        /// Milliseconds between the task's consecutive events by the log's `recorded_at` (ms precision), keyed
        /// `task.submitted→task.dispatched` and so on.
        var phases: [String: Double]
        var events: Int
    }

    static func run(cluster: Cluster, samples: Int) async throws -> (samples: [Sample], note: String?) {
        let server = "bench-01"
        try await cluster.attach(server, maxTasks: 1)
        try cluster.startBackend()
        try cluster.startAgent(server)
        try await cluster.waitForHello([server], timeout: .seconds(60))
        for _ in 0..<3 { _ = try await sample(cluster) }
        var results: [Sample] = []
        for index in 0..<samples {
            guard let result = try await sample(cluster) else {
                return (results, "task \(index + 1) of \(samples) did not start and finish within 30 s")
            }
            results.append(result)
        }
        return (results, nil)
    }

    /// One submit, timed until its start and its end are in the log; `nil` when they are not within 30 s.
    static func sample(_ cluster: Cluster) async throws -> Sample? {
        let clock = ContinuousClock()
        let before = try await cluster.log.store.lastPosition()
        let start = clock.now
        let task = try await cluster.submit(["true"], name: "bench-latency")
        let stream = StreamName.task(task)
        struct Seen: Sendable {
            var started: Duration?
            var finished: Duration?
            var times: [(String, Date)] = []
            var events = 0
        }
        let (seen, done) = await LogWatch.until(cluster.log, after: before, timeout: .seconds(30), initial: Seen()) {
            seen, event in
            seen.events += 1
            guard event.stream == stream else { return false }
            seen.times.append((event.type, event.recordedAt))
            if event.type == "task.started", seen.started == nil { seen.started = clock.now - start }
            if event.type == "task.finished" {
                seen.finished = clock.now - start
                return true
            }
            return false
        }
        guard done, let started = seen.started, let finished = seen.finished else { return nil }
        let times = seen.times
        let events = seen.events
        var phases: [String: Double] = [:]
        for (previous, next) in zip(times, times.dropFirst()) {
            phases["\(previous.0)→\(next.0)"] = next.1.timeIntervalSince(previous.1) * 1_000
        }
        return Sample(started: started.inMilliseconds, finished: finished.inMilliseconds, phases: phases, events: events)
    }

    /// The median of each phase over the samples, largest first: what dominated the latency.
    static func phaseSummary(_ samples: [Sample]) -> String {
        var keys: [String] = []
        for sample in samples { for key in sample.phases.keys where !keys.contains(key) { keys.append(key) } }
        let medians = keys.compactMap { key in Stats.median(samples.compactMap { $0.phases[key] }).map { (key, $0) } }
        let events = Stats.median(samples.map { Double($0.events) }) ?? 0
        return "median phases by recorded_at: "
            + medians.sorted { $0.1 > $1.1 }.map { "\($0.0) \(String(format: "%.0f", $0.1)) ms" }
            .joined(separator: ", ") + "; \(Int(events)) events appended per task (median)"
    }

    /// The rows of one run: row 4 (embedded) or row 5 (SQS; its baseline is filled in by `report`).
    static func rows(transport: BenchTransport, samples: [Sample], note: String?, smoke: Bool) -> [BenchRow] {
        let starts = samples.map(\.started)
        let ends = samples.map(\.finished)
        let p50 = Stats.quantile(starts, 0.5)
        let p99 = Stats.quantile(starts, 0.99)
        let end50 = Stats.quantile(ends, 0.5)
        let why = samples.isEmpty ? (note ?? "no samples") : note
        let detail = samples.isEmpty ? why : [why, "\(samples.count) tasks; " + phaseSummary(samples)]
            .compactMap { $0 }.joined(separator: "; ")
        func judged(_ value: Double?, _ limit: Double) -> Bool? { smoke ? nil : value.map { $0 <= limit } }
        switch transport {
        case .embedded:
            return [
                BenchRow(
                    row: 4, metric: "submit → task.started p50 (embedded queue)", value: p50, unit: "ms",
                    goal: "<= 20 ms", met: judged(p50, 20), note: detail),
                BenchRow(
                    row: 4, metric: "submit → task.started p99 (embedded queue)", value: p99, unit: "ms",
                    goal: "<= 100 ms", met: judged(p99, 100), note: why),
                BenchRow(
                    row: 4, metric: "submit → task.finished p50, task `true` (embedded queue)", value: end50,
                    unit: "ms", goal: "<= 40 ms", met: judged(end50, 40), note: why),
            ]
        case .sqs:
            return [
                BenchRow(
                    row: 5, metric: "submit → task.started p50 (SQS, ministack)", value: p50, unit: "ms",
                    goal: "<= 1.2x", met: nil, note: detail),
                BenchRow(
                    row: 5, metric: "submit → task.started p99 (SQS, ministack)", value: p99, unit: "ms",
                    goal: "—", met: nil, note: why),
            ]
        }
    }
}
