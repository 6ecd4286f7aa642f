import Domain
import Foundation
@testable import Orchestrator
@testable import Projections
import TestSupport
import Testing

/// Issue 16: the "why" line of a queued task names the real blocker on the servers it may use.
@Suite struct SchedulerExplainTests {
    static let heard = Date(timeIntervalSince1970: 1_800_000_000)

    func server(
        _ name: String, max: Int = 2, booked: Int = 0, gpus: Int = 0, foreign: [Int] = [], heard: Bool = true,
        labels: [String: String]? = nil
    ) -> ServerRow {
        var row = DeciderTests.serverRow(booked: booked)
        row.serverID = ServerID(rawValue: name)!
        row.maxTasks = max
        row.lastContact = heard ? Self.heard : nil
        row.labels = labels
        row.gpus = (0..<gpus).map {
            GPUDevice(
                index: $0, uuid: "GPU-\($0)", name: "A100", memoryTotalMiB: nil, memoryUsedMiB: nil,
                utilizationPercent: nil, foreignProcesses: foreign.contains($0) ? 1 : 0)
        }
        return row
    }

    func task(gpus: Int = 0, pinned: String? = nil, constraints: [String: String]? = nil) -> TaskRow {
        var row = TaskRow(
            taskID: Fixtures.taskA, command: ["x"], gpus: gpus, status: .queued, attempt: 0, serverID: nil,
            submittedAt: Fixtures.epoch0, outputs: [:])
        row.pinnedServer = pinned.flatMap(ServerID.init(rawValue:))
        row.constraints = constraints
        return row
    }

    func why(_ task: TaskRow, _ rows: [ServerRow]) -> String? {
        var servers = ServerCapacity()
        for row in rows { servers.rows[row.serverID.rawValue] = row }
        var tasks = TaskBoard()
        tasks.rows[task.taskID.rawValue] = task
        return Scheduler.explain(task, tasks: tasks, servers: servers)
    }

    @Test func namesTheBlockerOfTheOneServerItMayUse() {
        var detached = server("gpu-01")
        detached.detached = true
        detached.state = .detached
        var unreachable = server("gpu-01")
        unreachable.reachable = false
        unreachable.state = .unreachable
        unreachable.unreachableSince = Self.heard
        var unhealthy = server("gpu-01")
        unhealthy.unhealthy = "clock skew 6m"
        var draining = server("gpu-01", max: 0, booked: 1)
        draining.state = .draining
        draining.drain = DrainInfo(reason: nil, requestedBy: "op", requestedAt: Self.heard, deadline: nil, tasksAtStart: 1)
        let cases: [(ServerRow, String)] = [
            (server("gpu-01", max: 2, booked: 2), "waiting: gpu-01 is full (2/2 tasks)"),
            (detached, "waiting: gpu-01 is detached"),
            (unreachable, "waiting: gpu-01 is unreachable since 2027-01-15T08:00:00Z"),
            (unhealthy, "waiting: gpu-01 is unhealthy (clock skew 6m)"),
            (draining, "waiting: gpu-01 is draining"),
            (server("gpu-01", heard: false), "waiting: gpu-01 has not been heard from: is its agent running (touchstone-agent --server gpu-01)?"),
        ]
        for (row, expected) in cases {
            #expect(why(task(pinned: "gpu-01"), [row, server("gpu-02")]) == expected)
        }
    }

    @Test func gpusNamesForeignUseAndWhatCanNeverFit() {
        // Four GPUs, one held by an engineer's process: a 4-GPU task can never start there now.
        #expect(
            why(task(gpus: 4), [server("gpu-01", gpus: 4, foreign: [3])])
                == "waiting: needs 4 GPUs; gpu-01: 3 of 4 free (GPU 3 busy with another user's process)")
        #expect(
            why(task(gpus: 8), [server("gpu-01", gpus: 4), server("gpu-02", gpus: 2)])
                == "waiting: needs 8 GPUs; no server it may use has that many (the largest has 4)")
        #expect(why(task(gpus: 1), [server("gpu-01", gpus: 0)]) == "waiting: needs 1 GPUs; no server it may use has that many (the largest has 0)")
    }

    @Test func placementAndQueuePosition() {
        #expect(why(task(pinned: "gpu-09"), [server("gpu-01")]) == "waiting: pinned to gpu-09, which is not attached")
        #expect(
            why(task(constraints: ["gpu": "h100"]), [server("gpu-01", labels: ["gpu": "a100"])])
                == "waiting: no server matches its placement (needs gpu=h100; gpu-01 has gpu=a100)")
        // One server it may use has room: only the queue is in the way.
        #expect(why(task(), [server("gpu-01", booked: 2), server("gpu-02")]) == "waiting: placed at the next scheduling pass")
        #expect(why(task(), []) == "waiting: no server is attached")
        // Several blocked servers: each one named.
        #expect(
            why(task(), [server("gpu-01", booked: 2), server("gpu-02", heard: false)])
                == "waiting: gpu-01 is full (2/2 tasks); gpu-02 has not been heard from: is its agent running (touchstone-agent --server gpu-02)?")
    }

    @Test func aDetachedServerIsUnlinkedAndLinkedAgainWhenAttached() {
        var row = server("gpu-01")
        #expect(Backend.linkAction(row, linked: false) == .link)
        #expect(Backend.linkAction(row, linked: true) == .none)
        row.detached = true
        #expect(Backend.linkAction(row, linked: true) == .unlink)
        #expect(Backend.linkAction(row, linked: false) == .none)
    }
}
