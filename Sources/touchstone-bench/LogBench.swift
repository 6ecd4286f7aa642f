import Domain
import EventStore
import Foundation
import Projections

/// Issue 11's rows about the event log alone (1, 2, 3, 11), each beside its baseline measured in the same run.
///
/// - Row 1: sequential single-event durable appends/s on a bare ``SQLiteEventStore`` vs raw SQLite single-row commits
///   (`tools/lib/bench_sqlite.py single`, Python's sqlite3, same pragmas, same directory).
/// - Row 2: events/s with ``appenders`` concurrent appenders, ``eventsPerAppend`` events per call (group commit) vs
///   raw inserts batched by the largest possible group (`bench_sqlite.py batched`).
/// - Row 3: projection rebuild (`TouchstoneLog.verifyReadModels()`, what `audit verify` runs after the chain check)
///   over a log of realistic events vs a raw `SELECT *` scan of the same file (`bench_sqlite.py scan`).
/// - Row 11: opening a 1,000,000-event log and reading what a restarted backend serves from (servers, the first
///   1,000 queued tasks, the last position); the log is generated with batched appends through ``TouchstoneLog``.
///
/// Python is `$TOUCHSTONE_PYTHON`, else `python3`; the script is found next to the working directory's
/// `tools/lib` (the repository root is the current directory when `tools/bench` runs).
enum LogBench {
    static let appenders = 64
    static let eventsPerAppend = 16

    static func run(rows: Set<Int>, smoke: Bool, workDirectory: URL) async throws -> [BenchRow] {
        try FileManager.default.createDirectory(at: workDirectory, withIntermediateDirectories: true)
        var result: [BenchRow] = []
        if rows.contains(1) { result.append(try await singleAppends(smoke: smoke, in: workDirectory)) }
        if rows.contains(2) { result.append(try await groupCommit(smoke: smoke, in: workDirectory)) }
        if rows.contains(3) { result.append(try await rebuild(smoke: smoke, in: workDirectory)) }
        if rows.contains(11) { result.append(try await restart(smoke: smoke, in: workDirectory)) }
        return result
    }

    // MARK: Rows

    static func singleAppends(smoke: Bool, in directory: URL) async throws -> BenchRow {
        let count = smoke ? 100 : 1_000
        let store = try SQLiteEventStore(path: fresh(directory, "row1.db"))
        let event = sampleEvent()
        _ = try await store.append([event], to: "warm-up")
        let seconds = try await timed {
            for i in 0..<count { _ = try await store.append([event], to: "task/tsk-\(i % 500)") }
        }
        let value = Double(count) / seconds
        let baseline = try python(["single", fresh(directory, "row1-raw.db"), String(count)])
        return BenchRow(
            row: 1, metric: "single-event durable appends/s", value: value, unit: "events/s",
            baseline: "raw SQLite single-row commits/s (python sqlite3, WAL, synchronous=FULL)", baselineValue: baseline,
            goal: ">= 0.8x", met: smoke ? nil : value / baseline >= 0.8,
            note: "\(count) sequential appends of one event each, bare SQLiteEventStore (no read-model hook)")
    }

    static func groupCommit(smoke: Bool, in directory: URL) async throws -> BenchRow {
        let perAppender = smoke ? 10 : 100
        let store = try SQLiteEventStore(path: fresh(directory, "row2.db"))
        let events = Array(repeating: sampleEvent(), count: eventsPerAppend)
        _ = try await store.append(events, to: "warm-up")
        let seconds = try await timed {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for appender in 0..<appenders {
                    group.addTask {
                        for _ in 0..<perAppender { _ = try await store.append(events, to: "task/tsk-\(appender)") }
                    }
                }
                try await group.waitForAll()
            }
        }
        let total = appenders * perAppender * eventsPerAppend
        let value = Double(total) / seconds
        let batch = appenders * eventsPerAppend
        let baseline = try python(["batched", fresh(directory, "row2-raw.db"), String(total), String(batch)])
        return BenchRow(
            row: 2, metric: "appends/s with concurrent appenders (group commit)", value: value, unit: "events/s",
            baseline: "raw SQLite inserts in transactions of \(batch) rows (python sqlite3)", baselineValue: baseline,
            goal: ">= 100,000 events/s and >= 0.5x", met: smoke ? nil : value >= 100_000 && value / baseline >= 0.5,
            note: "\(appenders) concurrent appenders x \(perAppender) appends of \(eventsPerAppend) events, "
                + "bare SQLiteEventStore; \(total) events")
    }

    static func rebuild(smoke: Bool, in directory: URL) async throws -> BenchRow {
        let path = fresh(directory, "row3.db")
        let count = try await generate(path: path, events: smoke ? 20_000 : 300_000)
        let log = try TouchstoneLog(path: path)
        var mismatched: [String] = []
        let seconds = try await timed { mismatched = try await log.verifyReadModels().mismatched }
        let chainSeconds = try await timed { _ = try await log.store.verifyChain() }
        let value = Double(count) / seconds
        let baseline = try python(["scan", path])
        var note = "\(count) events; chain check alone \(Int(Double(count) / chainSeconds)) events/s"
        if !mismatched.isEmpty { note += "; MISMATCH: \(mismatched.joined(separator: ","))" }
        return BenchRow(
            row: 3, metric: "projection rebuild events/s (verifyReadModels from position 0)", value: value,
            unit: "events/s", baseline: "raw SELECT * scan of the same rows (python sqlite3)", baselineValue: baseline,
            goal: ">= 500,000 events/s and >= 0.3x",
            met: smoke ? nil : value >= 500_000 && value / baseline >= 0.3 && mismatched.isEmpty, note: note)
    }

    static func restart(smoke: Bool, in directory: URL) async throws -> BenchRow {
        let path = fresh(directory, "row11.db")
        let count = try await generate(path: path, events: smoke ? 50_000 : 1_000_000)
        var queued = 0
        var openSeconds = 0.0
        let seconds = try await timed {
            let start = ContinuousClock.now
            let log = try TouchstoneLog(path: path)
            openSeconds = Self.seconds(ContinuousClock.now - start)
            _ = try await log.servers()
            queued = try await log.queuedTasks(limit: 1_000).count
            _ = try await log.store.lastPosition()
        }
        return BenchRow(
            row: 11, metric: "backend restart to serving over a \(count)-event log", value: seconds * 1_000,
            unit: "ms", goal: "<= 5 s", met: smoke ? nil : seconds <= 5,
            note: "open \(Int(openSeconds * 1_000)) ms, then servers + \(queued) queued tasks + last position "
                + "(checkpointed read models, no refold)")
    }

    // MARK: Workload

    /// Fills a new log with about `events` realistic events through ``TouchstoneLog`` in batches of about 2,000
    /// (one transaction each): 20 servers, then task lifecycles (submit, dispatch, start-sending, request sent,
    /// response, started, finished) with heartbeats; the last tasks stay queued or running.
    /// - Returns: The number of events appended.
    static func generate(path: String, events target: Int) async throws -> Int {
        let log = try TouchstoneLog(path: path, now: { Date(timeIntervalSince1970: 1_800_000_000) })
        let backend = EventMetadata(actor: "backend")
        let servers = (0..<20).map { ServerID(rawValue: "gpu-\($0)")! }
        var batch = servers.map {
            TouchstoneLog.Append(.serverAttached(ServerAttached(serverID: $0, maxTasks: 8, channels: 3)), metadata: backend)
        }
        var generator = SystemRandomNumberGenerator()
        let time = Date(timeIntervalSince1970: 1_800_000_000)
        var total = 0
        var task = 0
        while total + batch.count < target {
            let id = TaskID.random(using: &generator)
            let server = servers[task % servers.count]
            let request = RequestID.make(now: time, using: &generator)
            let channel = ChannelID(server: server, index: 1 + task % 2)
            let spec = TaskSpec(
                name: "train-\(task)", command: ["python", "train.py", "--seed", "\(task)"],
                environment: ["RUN": "r\(task)"], gpus: 1, timeoutSeconds: 3_600, priority: task % 5)
            let remaining = target - total - batch.count
            var lifecycle: [DomainEvent] = [.taskSubmitted(TaskSubmitted(taskID: id, spec: spec))]
            if remaining > 2_000 || task % 2 == 0 {
                lifecycle += [
                    .taskDispatched(TaskDispatched(taskID: id, attempt: 1, serverID: server, requestID: request, gpuIndices: [0])),
                    .taskStartSending(TaskStartSending(taskID: id, attempt: 1, requestID: request, serverID: server, channel: channel.index, expiresAt: time)),
                    .requestSent(RequestSent(channel: channel, requestID: request, epoch: 1, sequence: Int64(task), command: "startTask", taskID: id, expiresAt: time, messageID: "m-\(task)")),
                    .responseReceived(ResponseReceived(channel: channel, requestID: request, epoch: 1, status: "ok", message: nil, agentTime: time, messageID: "r-\(task)")),
                    .taskStarted(TaskStarted(taskID: id, attempt: 1, serverID: server, pid: 4_242, startedAt: time)),
                ]
                if remaining > 2_000 {
                    lifecycle.append(.taskFinished(TaskFinished(taskID: id, attempt: 1, serverID: server, outcome: .succeeded, exitCode: 0, outputs: ["metrics.json": "{\"loss\":0.1}"], endedAt: time)))
                }
            }
            if task % 10 == 0 {
                lifecycle.append(.serverLivenessChanged(ServerLivenessChanged(serverID: server, reachable: true, missedHeartbeats: 0)))
            }
            batch += lifecycle.map { TouchstoneLog.Append($0, metadata: backend) }
            task += 1
            if batch.count >= 2_000 {
                total += try await log.append(batch).count
                batch.removeAll(keepingCapacity: true)
            }
        }
        if !batch.isEmpty { total += try await log.append(batch).count }
        return total
    }

    // MARK: Helpers

    static func sampleEvent() -> ProposedEvent {
        let payload = DomainEventCodec.encode(
            .taskStarted(TaskStarted(taskID: TaskID(rawValue: "tsk-0123456789ab"), attempt: 1, serverID: ServerID(rawValue: "gpu-1")!, pid: 4_242, startedAt: Date())))
        return ProposedEvent(type: payload.type, schema: payload.schema, payload: payload.payload, metadata: EventMetadata(actor: "backend"))
    }

    static func fresh(_ directory: URL, _ name: String) -> String {
        let path = directory.appendingPathComponent(name).path
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        return path
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func timed(_ body: () async throws -> Void) async rethrows -> Double {
        let start = ContinuousClock.now
        try await body()
        return seconds(ContinuousClock.now - start)
    }

    /// Runs `tools/lib/bench_sqlite.py` and returns its `per_second`.
    static func python(_ arguments: [String]) throws -> Double {
        let environment = ProcessInfo.processInfo.environment
        let python = environment["TOUCHSTONE_PYTHON"] ?? "python3"
        let script = FileManager.default.currentDirectoryPath + "/tools/lib/bench_sqlite.py"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, script] + arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
            let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let perSecond = object["per_second"] as? Double
        else {
            throw BenchError("bench_sqlite.py \(arguments.first ?? "") failed (exit \(process.terminationStatus))")
        }
        return perSecond
    }

    struct BenchError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}
