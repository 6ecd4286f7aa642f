import Domain
import Foundation
import TestSupport
import Testing
import Transport
import Wire

/// The agent guards its own capacity (issue 17 part 1): a real `touchstone-agent` refuses a start past its last known
/// `max_tasks` or onto a GPU a running attempt holds, whatever the backend's view says, with `capacityExceeded`.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct AgentCapacityGuardTests {
    typealias Harness = AgentProcessTests.Harness
    static let taskC = TaskID(rawValue: "tsk-00000000000c")

    static func start(
        _ attempt: Int, task: TaskID = Fixtures.taskA, marker: String, gpus: [Int] = [], max: Int, version: Int64 = 1
    ) -> Command {
        .startTask(
            StartTask(
                taskID: task, attempt: attempt,
                spec: TaskSpec(command: ["/bin/sh", "-c", "echo \(task)-\(attempt) >> \(marker); sleep 30"]), backend: "t",
                gpuIndices: gpus, capacity: CapacityView(maxTasks: max, bookedGPUs: gpus, serverVersion: version)))
    }

    static func call(_ harness: inout Harness, _ command: Command) async throws -> ResponseBody {
        try await harness.send(WireCoding.encode(harness.request(command)))
        return try await harness.response().body
    }

    static func refusal(_ body: ResponseBody) -> WireError? {
        if case .error(let error) = body, error.code == .capacityExceeded { return error }
        return nil
    }

    static func runs(_ marker: String) -> [String] {
        ((try? String(contentsOfFile: marker, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test func aStartPastTheLastKnownMaxTasksIsRefusedAndARaisedLimitAdmitsIt() async throws {
        var harness = try await Harness(server: Fixtures.gpu1)
        let marker = harness.directory.file("runs")
        guard case .taskStarted(let first) = try await Self.call(&harness, Self.start(1, marker: marker, max: 1)) else {
            Issue.record("the first start did not start")
            return
        }
        #expect(first.state == .running)
        // The backend's view says a slot is free (max 1 and, say, a forged empty server); the agent runs one already.
        let refused = try await Self.call(&harness, Self.start(1, task: Fixtures.taskB, marker: marker, max: 1))
        let error = try #require(Self.refusal(refused), "a start past max_tasks was not refused: \(refused)")
        #expect(error.message.contains("max_tasks is 1"))
        // A start of the attempt it runs is still answered with its report, never refused.
        guard case .taskStarted(let again) = try await Self.call(&harness, Self.start(1, marker: marker, max: 1)) else {
            Issue.record("a known attempt's start was refused")
            return
        }
        #expect(again.state == .running)
        // An older view (a resend of a booking decided before) never lowers the limit; a newer one raises it.
        guard case .taskStarted = try await Self.call(&harness, Self.start(1, task: Fixtures.taskB, marker: marker, max: 2, version: 2)) else {
            Issue.record("a raised max_tasks did not admit the start")
            return
        }
        let third = try await Self.call(&harness, Self.start(1, task: Self.taskC, marker: marker, max: 5, version: 1))
        #expect(Self.refusal(third) != nil, "an older view raised the limit: \(third)")
        try await Task.sleep(for: .milliseconds(300))
        #expect(Set(Self.runs(marker)) == ["\(Fixtures.taskA)-1", "\(Fixtures.taskB)-1"])
        #expect(Self.runs(marker).count == 2)
        #expect(await harness.stop() == 0)
    }

    @Test func aStartOntoAHeldGPUIsRefusedEvenAfterTheAgentRestartsAndAdoptsItsHolder() async throws {
        var harness = try await Harness(server: Fixtures.gpu1)
        let marker = harness.directory.file("runs")
        guard case .taskStarted = try await Self.call(&harness, Self.start(1, marker: marker, gpus: [0, 1], max: 4)) else {
            Issue.record("not started")
            return
        }
        let reuse = try await Self.call(&harness, Self.start(1, task: Fixtures.taskB, marker: marker, gpus: [1], max: 4))
        let error = try #require(Self.refusal(reuse), "GPU reuse admitted: \(reuse)")
        #expect(error.message.contains("GPU 1 is held by \(Fixtures.taskA)#1"))
        guard case .taskStarted = try await Self.call(&harness, Self.start(1, task: Self.taskC, marker: marker, gpus: [2], max: 4)) else {
            Issue.record("a free GPU was refused")
            return
        }
        // The agent dies (its tasks run on); the next one adopts them with their GPUs from their labels.
        let restarted = try await harness.killAndRestart()
        let afterRestart = try await Self.call(&harness, Self.start(2, task: Fixtures.taskB, marker: marker, gpus: [0], max: 4))
        #expect(Self.refusal(afterRestart) != nil, "an adopted attempt's GPU was reused: \(afterRestart)")
        #expect(Self.runs(marker).count == 2)
        restarted.signal(SIGTERM)
        #expect(await restarted.wait(timeout: .seconds(20)) == 0)
        harness.directory.remove()
    }

    @Test func aBatchOfStartsIsAdmittedAtomicallyUpToTheLimit() async throws {
        var harness = try await Harness(server: Fixtures.gpu1)
        let marker = harness.directory.file("runs")
        let tasks = [Fixtures.taskA, Fixtures.taskB, Self.taskC]
        let items = tasks.map { task -> StartTasks.Item in
            guard case .startTask(let start) = Self.start(1, task: task, marker: marker, max: 2) else { fatalError() }
            return StartTasks.Item(requestID: .make(), start: start)
        }
        guard case .startOutcomes(let outcomes) = try await Self.call(&harness, .startTasks(StartTasks(items: items))) else {
            Issue.record("no outcomes")
            return
        }
        let started = outcomes.outcomes.filter { if case .taskStarted = $0.body { true } else { false } }
        let refused = outcomes.outcomes.compactMap { Self.refusal($0.body) }
        #expect(started.count == 2)
        #expect(refused.count == 1)
        try await Task.sleep(for: .milliseconds(300))
        #expect(Self.runs(marker).count == 2)
        #expect(await harness.stop() == 0)
    }
}
