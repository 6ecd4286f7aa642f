import Domain
import EventStore
import Foundation
import Orchestrator
import Projections
import Synchronization
import TestSupport
import Testing
import Wire

/// Issue 17 end to end: a backend in this process and real `touchstone-agent` processes. The agent guards its own
/// capacity against a forged backend view, a stop racing its start on another channel takes effect, clocks lie
/// (an agent's ahead, the backend's jumping a year), and a process killed with its agent is lost, not failed.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct GuardEndToEndTests {
    static let gpu1 = Fixtures.gpu1

    static func events(_ cluster: Cluster) async throws -> [DomainEvent] {
        try await cluster.log.events(after: 0, limit: 100_000).map(\.event)
    }

    static func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// A task that records its start, and its end when stopped (the runtime's SIGTERM), in `marker`.
    static func recording(_ name: String, _ marker: String, sleep: Int) -> String {
        "echo \(name)-start >> \(marker); trap 'echo \(name)-end >> \(marker); exit 143' TERM; sleep \(sleep) & wait; echo \(name)-end >> \(marker)"
    }

    // MARK: part 1: the agent guards its capacity

    /// The log is edited by hand (a task that runs is recorded as finished), so the backend thinks the server is
    /// empty. The agent refuses the next start; the backend logs `server.capacity-violation-refused`, queues the task
    /// again without using a retry (max attempts 1), reconciles the server (its cleanup stops the attempt the log no
    /// longer holds), and the task runs once the slot is really free: never two at once.
    @Test(arguments: ["maxTasks", "gpu"])
    func aForgedEmptyServerIsRefusedByTheAgentAndNothingRunsPastItsCapacity(shape: String) async throws {
        let cluster = try Cluster(
            configuration: .init(
                statusInterval: .milliseconds(200), requestTimeout: .seconds(20), heartbeatTimeout: .seconds(2),
                maxAttempts: 1))
        let marker = cluster.directory.file("runs")
        let gpus = shape == "gpu" ? 3 : 0
        try await cluster.attach(Self.gpu1, maxTasks: shape == "gpu" ? 4 : 1)
        let fake = try FakeNvidiaSMI.install(.fourGPUsOneBusy, in: cluster.directory.path)
        try cluster.startAgent(Self.gpu1, nvidiaSMI: shape == "gpu" ? fake : nil)
        try await cluster.run { cluster in
            if shape == "gpu" {
                _ = try await cluster.waitUntil { ($0.servers[Self.gpu1]?.gpus.count ?? 0) == 4 }
            }
            let a = try await cluster.submit("tsk-00000000f0a1", Self.recording("a", marker, sleep: 60), gpus: gpus)
            _ = try await cluster.waitUntil { $0.tasks.rows[a.rawValue]?.status == .running }
            // The hand edit: the running attempt recorded as succeeded.
            try await cluster.log.append(
                .taskFinished(TaskFinished(taskID: a, attempt: 1, serverID: Self.gpu1, outcome: .succeeded, exitCode: 0)),
                metadata: EventMetadata(actor: "operator:forger"))
            let b = try await cluster.submit("tsk-00000000f0b1", "echo b-start >> \(marker)", gpus: shape == "gpu" ? 1 : 0)
            let done = try await cluster.waitUntil(timeout: .seconds(90)) { $0.tasks.rows[b.rawValue]?.status.isTerminal == true }
            let row = try #require(done.tasks.rows[b.rawValue])
            #expect(row.status == .succeeded, "\(row.status) \(row.reason ?? "")")
            #expect((row.attemptsNotRun ?? 0) >= 1)
            let events = try await Self.events(cluster)
            let refusals = events.compactMap { if case .serverCapacityViolationRefused(let e) = $0 { e } else { nil } }
            #expect(refusals.contains { $0.taskID == b && $0.attempt == 1 })
            if shape == "gpu" {
                #expect(refusals.first?.message.contains("is held by") == true)
            } else {
                #expect(refusals.first?.message.contains("max_tasks is 1") == true)
                #expect(refusals.first?.maxTasks == 1)
            }
            #expect(events.contains { if case .unrecognisedTaskFound(let e) = $0 { e.taskID == a } else { false } })
            // Never two at once: a ended (stopped by the cleanup) before b started.
            let runs = Self.lines(marker)
            #expect(runs.firstIndex(of: "a-end").map { end in runs.firstIndex(of: "b-start").map { $0 > end } ?? false } == true, "\(runs)")
            #expect(runs.filter { $0 == "b-start" }.count == 1)
        }
    }

    // MARK: part 2: stops racing starts on other channels

    /// Six channels (five task channels): every task is cancelled while its start may still be in flight on another
    /// channel. Every one ends cancelled (or, if it raced to the end, succeeded), and no process is left running.
    @Test(arguments: [4, 6])
    func aStopRacingItsStartOnAnotherChannelTakesEffect(channels: Int) async throws {
        let cluster = try Cluster()
        let pids = cluster.directory.file("pids")
        try FileManager.default.createDirectory(atPath: pids, withIntermediateDirectories: true)
        try await cluster.attach(Self.gpu1, maxTasks: 8, channels: channels)
        try cluster.startAgent(Self.gpu1, channels: channels)
        try await cluster.run { cluster in
            var tasks: [TaskID] = []
            for index in 0..<16 {
                let task = try await cluster.submit(
                    String(format: "tsk-00000000c%03x", index), "echo $$ > \(pids)/\(index); sleep 60")
                tasks.append(task)
                // Cancel at staggered moments: before dispatch, while the start is in flight, once it runs.
                if index % 4 != 0 { try await Task.sleep(for: .milliseconds(25 * (index % 4))) }
                try await CommandAppender(log: cluster.log).execute(
                    .cancel(reason: "race"), task: task, metadata: Cluster.operatorMeta)
            }
            let done = try await cluster.waitUntil(timeout: .seconds(90)) { snapshot in
                tasks.allSatisfy { snapshot.tasks.rows[$0.rawValue]?.status.isTerminal == true }
            }
            for task in tasks {
                #expect(done.tasks.rows[task.rawValue]?.status == .cancelled, "\(task): \(done.tasks.rows[task.rawValue].map { "\($0.status) \($0.reason ?? "")" } ?? "-")")
            }
            let events = try await Self.events(cluster)
            let stopChannels = Set(events.compactMap { event -> Int? in
                if case .requestSent(let e) = event, e.command == "stopTask" { e.channel.index } else { nil }
            })
            let startChannels = Set(events.compactMap { event -> Int? in
                if case .requestSent(let e) = event, e.command.hasPrefix("startTask") { e.channel.index } else { nil }
            })
            #expect(stopChannels.union(startChannels).count > 1, "starts and stops used one channel only")
            // No process of a cancelled task runs.
            try await Task.sleep(for: .seconds(1))
            for file in try FileManager.default.contentsOfDirectory(atPath: pids) {
                let pid = Int32(Self.lines(pids + "/" + file).first ?? "") ?? 0
                #expect(pid == 0 || kill(pid, 0) != 0, "task \(file) still runs as pid \(pid)")
            }
        }
    }

    // MARK: part 3: clocks

    /// A backend clock whose wall time a test moves; its monotonic clock is the real one.
    final class JumpingClock: BackendClock {
        let offset = Mutex<TimeInterval>(0)
        func now() -> Date { Date().addingTimeInterval(offset.withLock { $0 }) }
        func instant() -> ContinuousClock.Instant { .now }
        func jump(by seconds: TimeInterval) { offset.withLock { $0 += seconds } }
    }

    /// An agent clock off by more than `--max-clock-skew` makes its server unhealthy: no new task goes there, the
    /// running one is left alone, and it recovers by itself when the clock is fixed. An agent 25 s ahead (inside the
    /// tolerance, past the 20 s delivery deadline) still starts tasks: deadlines are sent in its time.
    @Test func anAgentWhoseClockIsOffGetsNoNewTasksUntilItIsFixed() async throws {
        let cluster = try Cluster()
        let offset = cluster.directory.file("agent-clock-offset")
        try "25".write(toFile: offset, atomically: true, encoding: .utf8)
        try await cluster.attach(Self.gpu1, maxTasks: 2)
        try cluster.startAgent(Self.gpu1, environment: ["TOUCHSTONE_FAULT_CLOCK_OFFSET_FILE": offset])
        try await cluster.run { cluster in
            // The skew is measured from the first answer (the hello); a start sent before it would carry an
            // uncorrected deadline.
            _ = try await cluster.waitUntil { $0.servers[Self.gpu1]?.lastContact != nil }
            let a = try await cluster.submit("tsk-00000000d0a1", "sleep 6")
            _ = try await cluster.waitUntil { $0.tasks.rows[a.rawValue]?.status == .running }
            #expect(try await cluster.log.snapshot().servers[Self.gpu1]?.unhealthy == nil)
            try "360".write(toFile: offset, atomically: true, encoding: .utf8)
            let skewed = try await cluster.waitUntil { $0.servers[Self.gpu1]?.unhealthy != nil }
            #expect(skewed.servers[Self.gpu1]?.unhealthy == "clock skew 6m")
            let b = try await cluster.submit("tsk-00000000d0b1", "true")
            try await Task.sleep(for: .seconds(2))
            let held = try await cluster.log.snapshot()
            #expect(held.tasks.rows[b.rawValue]?.status == .queued)
            #expect(held.tasks.rows[a.rawValue]?.status == .running)
            try "0".write(toFile: offset, atomically: true, encoding: .utf8)
            let done = try await cluster.waitUntil(timeout: .seconds(60)) {
                $0.tasks.rows[b.rawValue]?.status == .succeeded && $0.tasks.rows[a.rawValue]?.status == .succeeded
            }
            #expect(done.servers[Self.gpu1]?.unhealthy == nil)
            #expect(done.tasks.rows[a.rawValue]?.attempt == 1)
            #expect(done.tasks.rows[b.rawValue]?.attempt == 1)
        }
    }

    /// The backend's wall clock jumps a year forward, then back, while tasks start and run: nothing is withdrawn,
    /// expired, lost or run twice (deadlines and liveness are on the monotonic clock).
    @Test func aBackendWallClockJumpingAYearEitherWayLosesNothing() async throws {
        let clock = JumpingClock()
        var configuration = BackendConfiguration(
            statusInterval: .milliseconds(200), requestTimeout: .seconds(20), heartbeatTimeout: .seconds(2),
            lostAfter: .seconds(5))
        configuration.clock = clock
        let cluster = try Cluster(configuration: configuration)
        let marker = cluster.directory.file("runs")
        try await cluster.attach(Self.gpu1, maxTasks: 4)
        try cluster.startAgent(Self.gpu1)
        let year: TimeInterval = 365 * 86_400
        try await cluster.run { cluster in
            var tasks: [TaskID] = []
            for (index, jump) in [year, -year, -year, year].enumerated() {
                let task = try await cluster.submit(String(format: "tsk-00000000e%03x", index), "echo \(index) >> \(marker); sleep 2")
                tasks.append(task)
                try await Task.sleep(for: .milliseconds(150))
                clock.jump(by: jump)
                try await Task.sleep(for: .seconds(3))
            }
            let done = try await cluster.waitUntil(timeout: .seconds(90)) { snapshot in
                tasks.allSatisfy { snapshot.tasks.rows[$0.rawValue]?.status == .succeeded }
            }
            for task in tasks { #expect(done.tasks.rows[task.rawValue]?.attempt == 1) }
            let events = try await Self.events(cluster)
            #expect(!events.contains { if case .taskDispatchWithdrawn = $0 { true } else { false } })
            #expect(!events.contains { if case .taskFinished(let e) = $0 { e.outcome != .succeeded } else { false } })
            #expect(Self.lines(marker).sorted() == ["0", "1", "2", "3"])
        }
    }

    // MARK: part 4: a reboot is an infrastructure failure

    /// The agent and its task are killed together (as a host reboot does): no exit code exists. The restarted agent
    /// reports the attempt ended without one; the backend records it `lost` (infrastructure) and runs it again.
    @Test func aTaskKilledWithItsAgentIsLostAndRetriedNeverAUserFailure() async throws {
        let cluster = try Cluster()
        let flag = cluster.directory.file("ran-once")
        try await cluster.attach(Self.gpu1, maxTasks: 2)
        try cluster.startAgent(Self.gpu1)
        try await cluster.run { cluster in
            let task = try await cluster.submit("tsk-00000000b0a1", "if [ -f \(flag) ]; then exit 0; fi; touch \(flag); sleep 60")
            let running = try await cluster.waitUntil { $0.tasks.rows[task.rawValue]?.status == .running }
            let pid = try #require(running.tasks.rows[task.rawValue]?.pid)
            await cluster.killAgent(Self.gpu1)
            kill(-pid, SIGKILL)  // the task's whole session, wrapper included: no exit-code file is written
            try cluster.startAgent(Self.gpu1)
            let done = try await cluster.waitUntil(timeout: .seconds(60)) { $0.tasks.rows[task.rawValue]?.status.isTerminal == true }
            #expect(done.tasks.rows[task.rawValue]?.status == .succeeded)
            #expect(done.tasks.rows[task.rawValue]?.attempt == 2)
            let first = try await Self.events(cluster).compactMap { event -> TaskFinished? in
                if case .taskFinished(let e) = event, e.taskID == task, e.attempt == 1 { e } else { nil }
            }
            #expect(first.first?.outcome == .lost)
            #expect(first.first?.failureClass == .infrastructure)
        }
    }
}
