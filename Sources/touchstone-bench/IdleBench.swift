import EventStore
import Foundation
import Projections

/// Row 10: one attached server with nothing to do. `touchstone serve` and one `touchstone-agent` (embedded queue,
/// defaults) run; once the agent has said hello and `settle` has passed, the bench reads the agent's CPU time
/// (`utime + stime`) and the log's last position, waits `window`, and reads them again with the agent's `VmRSS`.
enum IdleBench {
    static func run(cluster: Cluster, window: Duration, settle: Duration, smoke: Bool) async throws -> [BenchRow] {
        let server = "bench-01"
        try await cluster.attach(server, maxTasks: 1)
        try cluster.startBackend()
        let agent = try cluster.startAgent(server)
        try await cluster.waitForHello([server], timeout: .seconds(60))
        try await Task.sleep(for: settle)
        guard let backend = cluster.pid("backend") else { throw BenchError("the backend is not running") }
        let clock = ContinuousClock()
        let position = try await cluster.log.store.lastPosition()
        let agentCPU = ProcStat.cpuSeconds(agent)
        let backendCPU = ProcStat.cpuSeconds(backend)
        let start = clock.now
        try await Task.sleep(for: window)
        let elapsed = (clock.now - start).inSeconds
        let agentCPUEnd = ProcStat.cpuSeconds(agent)
        let backendCPUEnd = ProcStat.cpuSeconds(backend)
        let rss = ProcStat.residentMB(agent)
        let counts = try await LogWatch.countTypes(cluster.log, after: position)
        let events = counts.values.reduce(0, +)
        let perMinute = Double(events) / elapsed * 60
        func share(_ from: Double?, _ to: Double?) -> Double? {
            guard let from, let to else { return nil }
            return (to - from) / elapsed * 100
        }
        let agentShare = share(agentCPU, agentCPUEnd)
        let backendShare = share(backendCPU, backendCPUEnd)
        let window = String(format: "%.0f s", elapsed)
        let types = counts.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        return [
            BenchRow(
                row: 10, metric: "idle agent RSS (VmRSS)", value: rss, unit: "MB", goal: "<= 20 MB",
                met: smoke ? nil : rss.map { $0 <= 20 }, note: rss == nil ? "cannot read /proc/\(agent)/status" : nil),
            BenchRow(
                row: 10, metric: "idle agent CPU over \(window)", value: agentShare, unit: "% of a core",
                goal: "<= 0.2 %", met: smoke ? nil : agentShare.map { $0 <= 0.2 },
                note: "the backend meanwhile: "
                    + (backendShare.map { String(format: "%.2f %% of a core", $0) } ?? "unreadable")),
            BenchRow(
                row: 10, metric: "log events per minute, one idle server", value: perMinute, unit: "events/min",
                goal: "<= 6/min", met: smoke ? nil : perMinute <= 6,
                note: "\(events) events in \(window)" + (types.isEmpty ? "" : ": \(types)")),
        ]
    }
}
