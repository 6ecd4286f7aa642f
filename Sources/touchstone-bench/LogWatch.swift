import EventStore
import Foundation
import Projections

/// Waiting on the event log through the store's tail (``SQLiteEventStore/tail(after:pollInterval:)``), never by
/// sleeping and re-reading in the bench itself.
enum LogWatch {
    /// How often the tail looks for another process's appends once caught up. 1 ms bounds the error a latency
    /// figure can carry from the watching itself (one `SELECT` of the newest rows per millisecond).
    static let pollInterval = Duration.milliseconds(1)

    /// Feeds every event after `position` to `step`, which updates `state` and says whether the wait is over, until
    /// it returns `true` or `timeout` passes.
    ///
    /// - Returns: The final state, and whether `step` returned `true` in time.
    static func until<State: Sendable>(
        _ log: TouchstoneLog, after position: Int64, timeout: Duration, initial: State,
        _ step: @escaping @Sendable (inout State, StoredEvent) -> Bool
    ) async -> (state: State, done: Bool) {
        await withTaskGroup(of: (State, Bool)?.self) { group in
            group.addTask {
                var state = initial
                do {
                    for try await event in log.store.tail(after: position, pollInterval: pollInterval)
                    where step(&state, event) {
                        return (state, true)
                    }
                } catch {}
                return (state, false)
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            var result: (State, Bool)?
            while let next = await group.next() {
                if let next {
                    result = next
                    break
                }
                group.cancelAll()  // the timeout: the tail ends with a cancellation and returns what it saw
            }
            group.cancelAll()
            return result ?? (initial, false)
        }
    }

    /// Counts the events of each type after `position` (up to the log's end now).
    static func countTypes(_ log: TouchstoneLog, after position: Int64) async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        var after = position
        while true {
            let batch = try await log.store.read(after: after, limit: 5_000)
            guard let last = batch.last else { return counts }
            for event in batch { counts[event.type, default: 0] += 1 }
            after = last.position
        }
    }
}

/// Order statistics of samples.
enum Stats {
    /// The `q`-quantile (0…1) by the nearest-rank method: the smallest sample with at least `q` of the samples at or
    /// below it. `nil` for no samples.
    static func quantile(_ samples: [Double], _ q: Double) -> Double? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        let rank = Int((q * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }

    static func median(_ samples: [Double]) -> Double? { quantile(samples, 0.5) }
}

extension Duration {
    /// The duration in milliseconds, as a `Double`.
    var inMilliseconds: Double {
        Double(components.seconds) * 1_000 + Double(components.attoseconds) / 1e15
    }

    var inSeconds: Double { inMilliseconds / 1_000 }
}

/// A process's CPU time and memory, read from `/proc` (proc(5)).
enum ProcStat {
    /// `utime + stime` of `/proc/PID/stat` (fields 14 and 15), in seconds (clock ticks / `sysconf(_SC_CLK_TCK)`).
    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // After "pid (comm)": field 3 is the state; utime and stime are fields 14 and 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
        return (utime + stime) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// `VmRSS` of `/proc/PID/status`, in MB (10^6 bytes; the kernel reports kB = 1,024 bytes).
    static func residentMB(_ pid: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let kB = Double(parts[1]) else { return nil }
            return kB * 1_024 / 1e6
        }
        return nil
    }
}
