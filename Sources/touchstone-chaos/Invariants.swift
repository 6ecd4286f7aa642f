import Domain
import EventStore
import Foundation
import Projections

/// Invariants 1–7 of DESIGN.md, checked after a chaos run against the log, the tasks' own record of what ran, and
/// the processes that really run.
struct Invariants {
    var lost = 0
    var doubled = 0
    var overCapacity = 0
    var rebuildEqual = false
    var chainOK = false
    var inSync = false
    var desyncs = 0
    var drains = 0
    var cleanups = 0
    var events: Int64 = 0
    var details: [String] = []

    var passed: Bool { lost == 0 && doubled == 0 && overCapacity == 0 && rebuildEqual && chainOK && inSync }

    static func check(run: ChaosRun, tasks: Int, realOverCapacity: [String]) async throws -> Invariants {
        var report = Invariants()
        let snapshot = try await run.log.snapshot()

        // No task lost: each ended succeeded (every workload task exits 0).
        for row in snapshot.tasks.rows.values where row.status != .succeeded {
            report.lost += 1
            report.details.append("not succeeded: \(row.taskID) \(row.status.rawValue) attempt \(row.attempt): \(row.reason ?? "-")")
        }
        if snapshot.tasks.rows.count != tasks {
            report.lost += tasks - snapshot.tasks.rows.count
            report.details.append("the log holds \(snapshot.tasks.rows.count) tasks of \(tasks)")
        }

        // Invariant 2 and 7: no attempt started twice, and no task ran to its end twice.
        let lines = ((try? String(contentsOfFile: run.record, encoding: .utf8)) ?? "").split(separator: "\n")
        var starts: [String: Int] = [:]
        var ends: [String: Int] = [:]
        for line in lines {
            let parts = line.split(separator: " ")
            guard parts.count == 3 else { continue }
            if parts[0] == "start" { starts["\(parts[1])/\(parts[2])", default: 0] += 1 }
            if parts[0] == "end" { ends[String(parts[1]), default: 0] += 1 }
        }
        for (attempt, count) in starts where count > 1 {
            report.doubled += 1
            report.details.append("attempt \(attempt) started \(count) times")
        }
        for (task, count) in ends where count > 1 {
            report.doubled += 1
            report.details.append("task \(task) ran to its end \(count) times")
        }
        for row in snapshot.tasks.rows.values where row.status == .succeeded && ends[row.taskID.rawValue] == nil {
            report.lost += 1
            report.details.append("\(row.taskID) is succeeded in the log but never ran to its end")
        }

        // Invariant 1, in the log (every booking made within max_tasks) and in reality (the sampled processes).
        var set = ProjectionSet(position: 0, servers: .init(), tasks: .init(), channels: .init())
        var after: Int64 = 0
        while true {
            let batch = try await run.log.events(after: after, limit: 5_000)
            guard let last = batch.last else { break }
            for event in batch {
                switch event.event {
                case .taskDispatched(let booking):
                    if let row = set.servers[booking.serverID], row.booked.count >= row.maxTasks || row.state != .attached {
                        report.overCapacity += 1
                        report.details.append(
                            "position \(event.position): booked on \(booking.serverID) with \(row.booked.count) of \(row.maxTasks) (\(row.state.rawValue))")
                    }
                case .channelDesyncDetected: report.desyncs += 1
                case .channelQueuesDrained: report.drains += 1
                case .unrecognisedTaskFound: report.cleanups += 1
                default: break
                }
                set.apply(event)
            }
            after = last.position
        }
        report.events = after
        report.overCapacity += realOverCapacity.count
        report.details += realOverCapacity.prefix(5).map { "really over capacity: \($0)" }

        // Invariants 5 and 6.
        let (mismatched, _) = try await run.log.verifyReadModels()
        report.rebuildEqual = mismatched.isEmpty
        if !mismatched.isEmpty { report.details.append("read models differ from a rebuild: \(mismatched)") }
        do {
            _ = try await run.log.store.verifyChain()
            report.chainOK = true
        } catch {
            report.details.append("hash chain: \(error)")
        }

        // In sync (invariant 3 and 7): no channel waits on a request past its deadline, nothing the log holds runs
        // is missing, and nothing runs that the log does not hold as running. "Returns to sync": a channel may be in
        // the middle of a drain when the workload ends, so the check is repeated for up to 30 s.
        var problems = try await syncProblems(run)
        let settleBy = ContinuousClock.now + .seconds(30)
        while !problems.isEmpty, ContinuousClock.now < settleBy {
            try await Task.sleep(for: .seconds(1))
            problems = try await syncProblems(run)
        }
        report.details += problems
        let inSync = problems.isEmpty
        report.inSync = inSync
        return report
    }

    /// What is out of sync now: channels waiting past a deadline, and running tasks the log and reality disagree on.
    static func syncProblems(_ run: ChaosRun) async throws -> [String] {
        var problems: [String] = []
        let snapshot = try await run.log.snapshot()
        let now = Date()
        for row in snapshot.channels.rows.values {
            if let outstanding = row.outstanding, (outstanding.answerBy ?? outstanding.expiresAt) < now.addingTimeInterval(-2) {
                problems.append("\(row.channel) still waits on \(outstanding.command) \(outstanding.requestID) past its deadline")
            }
        }
        let real = RealProcesses.running(under: run.directory)
        let logRunning = Set(snapshot.tasks.rows.values.filter { $0.status == .running }.map { "\($0.taskID)/\($0.attempt)" })
        let reallyRunning = Set(real.values.flatMap { $0 })
        if logRunning != reallyRunning {
            problems.append("log running \(logRunning.sorted()) but really running \(reallyRunning.sorted())")
        }
        return problems
    }
}
