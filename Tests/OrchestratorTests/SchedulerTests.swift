import Domain
import Foundation
import Orchestrator
@testable import Projections
import TestSupport
import Testing
import Wire

@Suite struct SchedulerTests {
    func state(servers: [(ServerID, Int)], tasks: Int, booked: [ServerID: Int] = [:]) -> (TaskBoard, ServerCapacity) {
        var events: [DomainEvent] = servers.map { .serverAttached(ServerAttached(serverID: $0.0, maxTasks: $0.1, channels: 3)) }
        var generator = SeededGenerator(seed: 7)
        for (server, count) in booked {
            for _ in 0..<count {
                let id = TaskID.random(using: &generator)
                events.append(.taskSubmitted(TaskSubmitted(taskID: id, spec: Fixtures.spec())))
                events.append(.taskDispatched(TaskDispatched(taskID: id, attempt: 1, serverID: server, requestID: Fixtures.request(0))))
            }
        }
        for index in 0..<tasks {
            events.append(.taskSubmitted(TaskSubmitted(taskID: TaskID(rawValue: String(format: "tsk-%012d", index)), spec: Fixtures.spec())))
        }
        let recorded = events.enumerated().map { Fixtures.recorded($1, at: Int64($0 + 1)) }
        return (TaskBoard(replaying: recorded), ServerCapacity(replaying: recorded))
    }

    @Test func neverBooksPastMaxTasks() {
        let (tasks, servers) = state(servers: [(Fixtures.gpu1, 2), (Fixtures.gpu2, 1)], tasks: 6)
        let plan = Scheduler.plan(tasks: tasks, servers: servers, eligible: [Fixtures.gpu1, Fixtures.gpu2])
        #expect(plan.count == 3)
        #expect(plan.filter { $0.serverID == Fixtures.gpu1 }.count == 2)
        #expect(plan.filter { $0.serverID == Fixtures.gpu2 }.count == 1)
        #expect(plan.allSatisfy { $0.attempt == 1 })
    }

    @Test func countsExistingBookingsAndOldestFirst() {
        let (tasks, servers) = state(servers: [(Fixtures.gpu1, 2)], tasks: 3, booked: [Fixtures.gpu1: 1])
        let plan = Scheduler.plan(tasks: tasks, servers: servers, eligible: [Fixtures.gpu1])
        #expect(plan.map(\.taskID.rawValue) == ["tsk-000000000000"])
    }

    @Test func packsOntoTheBusierServer() {
        let (tasks, servers) = state(servers: [(Fixtures.gpu1, 4), (Fixtures.gpu2, 4)], tasks: 1, booked: [Fixtures.gpu2: 1])
        let plan = Scheduler.plan(tasks: tasks, servers: servers, eligible: [Fixtures.gpu1, Fixtures.gpu2])
        #expect(plan.map(\.serverID) == [Fixtures.gpu2])
    }

    @Test func drainedOrUnlinkedServersGetNothing() {
        let (tasks, servers) = state(servers: [(Fixtures.gpu1, 0), (Fixtures.gpu2, 3)], tasks: 2)
        #expect(Scheduler.plan(tasks: tasks, servers: servers, eligible: [Fixtures.gpu1]).isEmpty)
        #expect(Scheduler.plan(tasks: tasks, servers: servers, eligible: [Fixtures.gpu1, Fixtures.gpu2]).map(\.serverID) == [Fixtures.gpu2, Fixtures.gpu2])
    }
}

@Suite struct ReconcilerTests {
    let ctx = Reconciler.Context(server: Fixtures.gpu1)

    func row(_ status: TaskStatus, attempt: Int = 1) -> TaskRow {
        TaskRow(taskID: Fixtures.taskA, command: ["x"], gpus: 0, status: status, attempt: attempt, serverID: Fixtures.gpu1, submittedAt: Fixtures.epoch0, outputs: [:])
    }

    func report(_ state: TaskStatusReport.State, exit: Int32? = nil, attempt: Int = 1) -> TaskStatusReport {
        TaskStatusReport(taskID: Fixtures.taskA, attempt: attempt, state: state, pid: 5, startedAt: Fixtures.epoch0, endedAt: Fixtures.epoch0, exitCode: exit, outputs: ["m": "1"])
    }

    @Test func runningReportStartsAStartingTask() {
        #expect(Reconciler.transitions(for: row(.starting), report: report(.running), context: ctx) == [
            .taskStarted(TaskStarted(taskID: Fixtures.taskA, attempt: 1, serverID: Fixtures.gpu1, pid: 5, startedAt: Fixtures.epoch0))
        ])
        #expect(Reconciler.transitions(for: row(.running), report: report(.running), context: ctx).isEmpty)
    }

    @Test func exitZeroSucceedsAndNonZeroFailsAsUserError() {
        let ok = Reconciler.transitions(for: row(.running), report: report(.exited, exit: 0), context: ctx)
        #expect(ok == [.taskFinished(TaskFinished(taskID: Fixtures.taskA, attempt: 1, serverID: Fixtures.gpu1, outcome: .succeeded, exitCode: 0, outputs: ["m": "1"], endedAt: Fixtures.epoch0))])
        let bad = Reconciler.transitions(for: row(.starting), report: report(.exited, exit: 3), context: ctx)
        #expect(bad.count == 2)
        guard case .taskFinished(let finished) = bad.last else { Issue.record("no finish"); return }
        #expect(finished.outcome == .failed)
        #expect(finished.failureClass == .user)
    }

    @Test func failedToStartIsAnInfrastructureFailureAndIsRetried() {
        let events = Reconciler.transitions(for: row(.starting), report: report(.failedToStart), context: ctx)
        guard case .taskFinished(let finished) = events.first, case .taskRequeued(let requeued) = events.last,
            events.count == 2
        else { Issue.record("\(events)"); return }
        #expect(finished.failureClass == .infrastructure)
        #expect(requeued.afterAttempt == 1)
        // The last allowed attempt is final.
        let last = Reconciler.transitions(for: row(.starting, attempt: 3), report: report(.failedToStart, attempt: 3), context: ctx)
        #expect(last.count == 1)
    }

    @Test func aStopAfterTheDrainDeadlineIsRequeuedNotCancelled() {
        let drained = Reconciler.Context(server: Fixtures.gpu1, stoppedForDrain: true)
        let events = Reconciler.transitions(for: row(.running), report: report(.stopped), context: drained)
        guard case .taskFinished(let finished) = events.first, case .taskRequeued = events.last else {
            Issue.record("\(events)"); return
        }
        #expect(finished.outcome == .failed)
        #expect(finished.failureClass == .infrastructure)
        // An operator's drain never uses up the retry budget.
        let third = Reconciler.transitions(for: row(.running, attempt: 3), report: report(.stopped, attempt: 3), context: drained)
        guard case .taskRequeued = third.last else { Issue.record("attempt 3 stopped by a drain was not requeued: \(third)"); return }
        var cancelledRow = row(.running)
        cancelledRow.cancelRequestedAt = Fixtures.epoch0
        let cancelled = Reconciler.transitions(for: cancelledRow, report: report(.stopped), context: ctx)
        guard case .taskFinished(let plain) = cancelled.first, cancelled.count == 1 else { Issue.record("\(cancelled)"); return }
        #expect(plain.outcome == .cancelled)
    }

    /// Issue 16: a task its own agent stopped while shutting down (past the agent's drain deadline) is neither the
    /// user's failure nor a cancellation: an infrastructure failure, retried.
    @Test func aStopNobodyAskedForIsAnInfrastructureFailureAndIsRetried() {
        let events = Reconciler.transitions(
            for: row(.running), report: report(.stopped), context: ctx)
        guard case .taskFinished(let finished) = events.first, case .taskRequeued = events.last, events.count == 2 else {
            Issue.record("\(events)"); return
        }
        #expect(finished.outcome == .failed)
        #expect(finished.failureClass == .infrastructure)
        #expect(finished.reason?.contains("stopped by the agent of gpu-01") == true)
    }

    @Test func aRunningTaskMissingFromTheAgentIsLostAndRequeued() {
        let events = Reconciler.lost(row(.running), reason: "gone", maxAttempts: 3)
        guard case .taskFinished(let finished) = events.first, case .taskRequeued = events.last else {
            Issue.record("\(events)"); return
        }
        #expect(finished.outcome == .lost)
        #expect(Reconciler.lost(row(.succeeded), reason: "gone", maxAttempts: 3).isEmpty)
    }

    @Test func reportsForOtherAttemptsServersOrEndedTasksAreIgnored() {
        #expect(Reconciler.transitions(for: row(.running, attempt: 2), report: report(.exited, exit: 0), context: ctx).isEmpty)
        #expect(Reconciler.transitions(for: row(.running), report: report(.exited, exit: 0), context: .init(server: Fixtures.gpu2)).isEmpty)
        #expect(Reconciler.transitions(for: row(.succeeded), report: report(.exited, exit: 1), context: ctx).isEmpty)
    }
}

@Suite struct SchedulerPolicyTests {
    func recorded(_ events: [DomainEvent]) -> [RecordedEvent<DomainEvent>] {
        events.enumerated().map { Fixtures.recorded($1, at: Int64($0 + 1)) }
    }

    func gpus(_ count: Int, busy: Set<Int> = []) -> [GPUDevice] {
        (0..<count).map {
            GPUDevice(index: $0, uuid: "GPU-\($0)", name: "A100", memoryTotalMiB: 40960, memoryUsedMiB: 0,
                      utilizationPercent: 0, foreignProcesses: busy.contains($0) ? 1 : 0)
        }
    }

    @Test func higherPriorityFirstThenOldestFirst() {
        let events = recorded([
            .serverAttached(ServerAttached(serverID: Fixtures.gpu1, maxTasks: 2, channels: 3)),
            .taskSubmitted(TaskSubmitted(taskID: TaskID(rawValue: "tsk-old"), spec: TaskSpec(command: ["x"]))),
            .taskSubmitted(TaskSubmitted(taskID: TaskID(rawValue: "tsk-urgent"), spec: TaskSpec(command: ["x"], priority: 5))),
            .taskSubmitted(TaskSubmitted(taskID: TaskID(rawValue: "tsk-new"), spec: TaskSpec(command: ["x"]))),
        ])
        let plan = Scheduler.plan(tasks: TaskBoard(replaying: events), servers: ServerCapacity(replaying: events), eligible: [Fixtures.gpu1])
        #expect(plan.map(\.taskID.rawValue) == ["tsk-urgent", "tsk-old"])
    }

    @Test func spreadPutsTasksOnTheLeastBusyServer() {
        let events = recorded([
            .serverAttached(ServerAttached(serverID: Fixtures.gpu1, maxTasks: 4, channels: 3)),
            .serverAttached(ServerAttached(serverID: Fixtures.gpu2, maxTasks: 4, channels: 3)),
            .taskSubmitted(TaskSubmitted(taskID: TaskID(rawValue: "tsk-1"), spec: TaskSpec(command: ["x"]))),
            .taskSubmitted(TaskSubmitted(taskID: TaskID(rawValue: "tsk-2"), spec: TaskSpec(command: ["x"]))),
        ])
        let tasks = TaskBoard(replaying: events)
        let servers = ServerCapacity(replaying: events)
        #expect(Scheduler.plan(tasks: tasks, servers: servers, eligible: [Fixtures.gpu1, Fixtures.gpu2], packing: .spread).map(\.serverID) == [Fixtures.gpu1, Fixtures.gpu2])
        #expect(Scheduler.plan(tasks: tasks, servers: servers, eligible: [Fixtures.gpu1, Fixtures.gpu2], packing: .pack).map(\.serverID) == [Fixtures.gpu1, Fixtures.gpu1])
    }

    @Test func gpuTasksGetDistinctFreeGPUsAndBackfillAroundATaskThatDoesNotFit() {
        let events = recorded([
            .serverAttached(ServerAttached(serverID: Fixtures.gpu1, maxTasks: 8, channels: 3)),
            .serverGPUsObserved(ServerGPUsObserved(serverID: Fixtures.gpu1, gpus: gpus(4, busy: [1]), problem: nil)),
            .taskSubmitted(TaskSubmitted(taskID: TaskID(rawValue: "tsk-a"), spec: TaskSpec(command: ["x"], gpus: 2))),
            .taskSubmitted(TaskSubmitted(taskID: TaskID(rawValue: "tsk-b"), spec: TaskSpec(command: ["x"], gpus: 2))),
            .taskSubmitted(TaskSubmitted(taskID: TaskID(rawValue: "tsk-c"), spec: TaskSpec(command: ["x"], gpus: 1))),
            .taskSubmitted(TaskSubmitted(taskID: TaskID(rawValue: "tsk-d"), spec: TaskSpec(command: ["x"]))),
        ])
        let plan = Scheduler.plan(tasks: TaskBoard(replaying: events), servers: ServerCapacity(replaying: events), eligible: [Fixtures.gpu1])
        #expect(plan.map(\.taskID.rawValue) == ["tsk-a", "tsk-c", "tsk-d"])
        #expect(plan.map(\.gpuIndices) == [[0, 2], [3], []])
    }

    @Test func unreachableOrDetachingServersGetNothing() {
        var events: [DomainEvent] = [
            .serverAttached(ServerAttached(serverID: Fixtures.gpu1, maxTasks: 4, channels: 3)),
            .serverLivenessChanged(ServerLivenessChanged(serverID: Fixtures.gpu1, reachable: false, missedHeartbeats: 3)),
            .taskSubmitted(TaskSubmitted(taskID: TaskID(rawValue: "tsk-1"), spec: TaskSpec(command: ["x"]))),
        ]
        var servers = ServerCapacity(replaying: recorded(events))
        #expect(servers[Fixtures.gpu1]?.state == .unreachable)
        #expect(Scheduler.plan(tasks: TaskBoard(replaying: recorded(events)), servers: servers, eligible: [Fixtures.gpu1]).isEmpty)
        events.append(.serverLivenessChanged(ServerLivenessChanged(serverID: Fixtures.gpu1, reachable: true, missedHeartbeats: 0)))
        events.append(.serverDetachRequested(ServerDetachRequested(serverID: Fixtures.gpu1, force: false)))
        servers = ServerCapacity(replaying: recorded(events))
        #expect(servers[Fixtures.gpu1]?.state == .attached)
        #expect(Scheduler.plan(tasks: TaskBoard(replaying: recorded(events)), servers: servers, eligible: [Fixtures.gpu1]).isEmpty)
    }
}
