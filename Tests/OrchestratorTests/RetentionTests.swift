import Domain
import Foundation
import Orchestrator
import Testing

/// Issue 15, part 4 (files only): what `touchstone gc` removes.
@Suite struct RetentionTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let old = TaskID(rawValue: "tsk-000000000001")
    let recent = TaskID(rawValue: "tsk-000000000002")
    let live = TaskID(rawValue: "tsk-000000000003")
    func daysAgo(_ days: Double) -> Date { now.addingTimeInterval(-days * 86_400) }

    @Test func filesOfTasksEndedBeforeTheRetentionGoAndTheRestStay() {
        let tasks = [
            Retention.TaskFacts(taskID: old, endedAt: daysAgo(31), inputs: ["aaa", "shared"]),
            Retention.TaskFacts(taskID: recent, endedAt: daysAgo(29), inputs: ["bbb"]),
            Retention.TaskFacts(taskID: live, endedAt: nil, inputs: ["shared"]),
        ]
        let listing = Retention.Listing(
            artifactTasks: [old.rawValue, recent.rawValue, "tsk-unknown"],
            logTasks: [old.rawValue, live.rawValue],
            inputs: ["aaa": daysAgo(40), "bbb": daysAgo(40), "shared": daysAgo(40), "orphan": daysAgo(2), "fresh": now])
        let plan = Retention.plan(tasks: tasks, listing: listing, policy: RetentionPolicy(days: 30), now: now)
        #expect(plan.map(\.path) == ["artifacts/\(old)", "logs/\(old)", "inputs/aaa", "inputs/orphan"])
        #expect(plan.map(\.kind) == ["artifacts", "logs", "input", "input"])
    }

    @Test func retentionZeroTakesEveryEndedTaskButNeverALiveOnesInput() {
        let tasks = [
            Retention.TaskFacts(taskID: recent, endedAt: now.addingTimeInterval(-1), inputs: ["bbb"]),
            Retention.TaskFacts(taskID: live, endedAt: nil, inputs: ["ccc"]),
        ]
        let listing = Retention.Listing(
            artifactTasks: [recent.rawValue, live.rawValue], logTasks: [recent.rawValue, live.rawValue],
            inputs: ["bbb": daysAgo(1), "ccc": daysAgo(1)])
        let plan = Retention.plan(tasks: tasks, listing: listing, policy: RetentionPolicy(days: 0), now: now)
        #expect(plan.map(\.path) == ["artifacts/\(recent)", "logs/\(recent)", "inputs/bbb"])
    }

    @Test func theEventSumsTheBytesFreed() throws {
        let event = GarbageCollected(
            retentionDays: 7,
            removed: [.init(kind: "logs", path: "logs/x", bytes: 10), .init(kind: "input", path: "inputs/y", bytes: 32)])
        #expect(event.bytesFreed == 42)
        let encoded = DomainEventCodec.encode(.garbageCollected(event))
        let decoded = try DomainEventCodec.decode(
            type: GarbageCollected.eventType, schema: 1, payload: encoded.payload, position: 1)
        #expect(decoded == .garbageCollected(event))
        #expect(DomainEventCodec.stream(of: .garbageCollected(event)) == "maintenance")
    }
}
