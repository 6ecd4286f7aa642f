import Domain
import EventStore
import Foundation
import GRDB
import Projections
import TestSupport
import Testing

/// The task board's side tables (`task_queue`, `tasks_by_server`), their typed reads, and group commit with the
/// read-model hook.
@Suite struct TaskIndexTests {
    let directory = TemporaryDirectory("taskindex")
    let actor = EventMetadata(actor: "test")

    func submit(_ id: TaskID, priority: Int) -> TouchstoneLog.Append {
        .init(.taskSubmitted(TaskSubmitted(taskID: id, spec: TaskSpec(command: ["/bin/true"], priority: priority))), metadata: actor)
    }

    @Test func queuedAndLiveTasksFollowTheBoard() async throws {
        let log = try TouchstoneLog(path: directory.file("log.db"))
        let low = TaskID(rawValue: "tsk-00000000000a")
        let high = TaskID(rawValue: "tsk-00000000000b")
        let later = TaskID(rawValue: "tsk-00000000000c")
        try await log.append([submit(low, priority: 0)])
        try await log.append([submit(high, priority: 5)])
        try await log.append([submit(later, priority: 5)])
        try await log.append(.serverAttached(ServerAttached(serverID: Fixtures.gpu1, maxTasks: 2, channels: 2)), metadata: actor)
        #expect(try await log.queuedTasks(limit: 10).map(\.taskID) == [high, later, low])
        #expect(try await log.queuedTasks(limit: 1).map(\.taskID) == [high])
        try await log.append(
            .taskDispatched(TaskDispatched(taskID: high, attempt: 1, serverID: Fixtures.gpu1, requestID: Fixtures.request(1))),
            metadata: actor)
        #expect(try await log.queuedTasks(limit: 10).map(\.taskID) == [later, low])
        #expect(try await log.liveTasks(on: Fixtures.gpu1).map(\.taskID) == [high])
        #expect(try await log.liveTasks(on: Fixtures.gpu2).isEmpty)
        try await log.append(
            .taskFinished(TaskFinished(taskID: high, attempt: 1, serverID: Fixtures.gpu1, outcome: .succeeded)), metadata: actor)
        #expect(try await log.liveTasks(on: Fixtures.gpu1).isEmpty)
        #expect(try await log.task(high)?.status == .succeeded)
        #expect(try await log.task(TaskID(rawValue: "tsk-0000000000ff")) == nil)
        #expect(try await log.servers()[Fixtures.gpu1]?.maxTasks == 2)
        #expect(try await log.verifyReadModels().mismatched == [])
    }

    @Test func verifyCatchesASideTableThatDisagrees() async throws {
        let log = try TouchstoneLog(path: directory.file("log.db"))
        try await log.append([submit(Fixtures.taskA, priority: 1)])
        let queue = try DatabaseQueue(path: directory.file("log.db"))
        try await queue.write { db in try db.execute(sql: "DELETE FROM task_queue") }
        #expect(try await log.verifyReadModels().mismatched == ["task_queue"])
    }

    @Test func migratingAnExistingLogFillsTheSideTablesFromTheStoredBoard() async throws {
        let path = directory.file("log.db")
        let log = try TouchstoneLog(path: path)
        try await log.append([submit(Fixtures.taskA, priority: 1), submit(Fixtures.taskB, priority: 2)])
        try await log.append(
            .taskDispatched(TaskDispatched(taskID: Fixtures.taskA, attempt: 1, serverID: Fixtures.gpu1, requestID: Fixtures.request(1))),
            metadata: actor)
        // Make the file look like one written before the side tables existed.
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            try db.execute(sql: "DROP TABLE task_queue; DROP TABLE tasks_by_server")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'v2-task-index'")
        }
        try queue.close()
        let reopened = try TouchstoneLog(path: path)
        #expect(try await reopened.queuedTasks(limit: 10).map(\.taskID) == [Fixtures.taskB])
        #expect(try await reopened.liveTasks(on: Fixtures.gpu1).map(\.taskID) == [Fixtures.taskA])
        #expect(try await reopened.verifyReadModels().mismatched == [])
    }

    @Test func concurrentAppendersThroughTheReadModelsMatchARebuild() async throws {
        var generator = SeededGenerator(seed: 99)
        let events = RebuildPropertyTests.randomEvents(count: 400, using: &generator)
        let log = try TouchstoneLog(path: directory.file("log.db"))
        // 16 appenders append interleaved slices at once: group commit puts several callers in one transaction,
        // each through the read-model hook in its own savepoint.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<16 {
                let mine = stride(from: lane, to: events.count, by: 16).map { events[$0] }
                group.addTask {
                    for event in mine { try await log.append(event, metadata: self.actor) }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await log.store.lastPosition() == Int64(events.count))
        #expect(try await log.verifyReadModels().mismatched == [])
        #expect(try await log.store.verifyChain() == Int64(events.count))
        #expect(try await log.snapshot() == log.replay())
    }
}
