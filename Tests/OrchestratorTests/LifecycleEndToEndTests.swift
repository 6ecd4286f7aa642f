import Domain
import EventStore
import Foundation
import Orchestrator
import Projections
import TestSupport
import Testing
import Wire

/// Issue 5's "done when", each with real agent processes and real child processes.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct LifecycleEndToEndTests {
    let gpu1 = Fixtures.gpu1
    let gpu2 = Fixtures.gpu2

    @Test func drainingABusyServerEndsDetachedOnlyAfterItsTasksReallyStopped() async throws {
        let cluster = try Cluster()
        try await cluster.attach(gpu1, maxTasks: 2)
        try cluster.startAgent(gpu1)
        for index in 0..<2 { try await cluster.submit("tsk-drain000000\(index)", "sleep 2") }
        try await cluster.run { cluster in
            _ = try await cluster.waitUntil { $0.tasks.rows.values.filter { $0.status == .running }.count == 2 }
            try await cluster.log.append(
                .serverDrainRequested(ServerDrainRequested(serverID: gpu1, deadline: nil, reason: "maintenance")),
                metadata: Cluster.operatorMeta)
            var sawDraining = false
            let final = try await cluster.waitUntil(check: { snapshot in
                let running = snapshot.tasks.rows.values.contains { !$0.status.isTerminal }
                let state = snapshot.servers[gpu1]!.state
                if running {
                    #expect(state == .draining, "detached while tasks still ran")
                    sawDraining = true
                    #expect(snapshot.servers[gpu1]!.drain?.tasksAtStart == 2)
                }
            }) { $0.servers[gpu1]!.state == .detached }
            #expect(sawDraining)
            #expect(final.tasks.rows.values.allSatisfy { $0.status == .succeeded })
            #expect(final.servers[gpu1]!.drain?.reason == "maintenance")
        }
        try await cluster.verifyNoOverBooking()
    }

    @Test func aDrainRacingDispatchesNeverOverBooksAndLosesNothing() async throws {
        let cluster = try Cluster()
        // Two task channels (4 channels: control, two task channels, the transfer channel), no agent yet: two starts
        // are sent and wait; the third booking waits for a channel.
        try await cluster.attach(gpu1, maxTasks: 3, channels: 4)
        // Its agent answered once before (a server never heard from gets nothing) and is down for a moment now.
        try await cluster.log.append(
            .serverHelloReceived(
                ServerHelloReceived(
                    serverID: gpu1, agentVersion: "test", agentTime: Date(), clockSkewMilliseconds: 0, runningTasks: [],
                    gpuCount: 0)),
            metadata: Cluster.operatorMeta)
        for index in 0..<3 { try await cluster.submit("tsk-race0000000\(index)", "sleep 0.5") }
        try await cluster.run { cluster in
            _ = try await cluster.waitUntil { $0.servers[gpu1]!.booked.count == 3 }
            try await cluster.log.append(
                .serverDrainRequested(ServerDrainRequested(serverID: gpu1, deadline: nil, reason: "race")),
                metadata: Cluster.operatorMeta)
            // The agent comes up: the two starts already sent run; the booking not yet sent is withdrawn when a
            // channel frees, and queued again.
            try cluster.startAgent(gpu1, channels: 4)
            let withdrawn = try await cluster.waitUntil { $0.tasks.rows.values.contains { $0.status == .queued } }
            #expect(withdrawn.servers[gpu1]!.state == .draining)
            try await cluster.attach(gpu2, maxTasks: 1)
            try cluster.startAgent(gpu2)
            let final = try await cluster.waitUntil {
                $0.tasks.rows.values.allSatisfy { $0.status.isTerminal } && $0.servers[gpu1]!.state == .detached
            }
            #expect(final.tasks.rows.values.allSatisfy { $0.status == .succeeded })
            #expect(final.tasks.rows.values.filter { $0.serverID == gpu2 }.count == 1)
        }
        let withdrawals = try await cluster.log.store.read(after: 0, limit: 10_000, types: ["task.dispatch-withdrawn"])
        #expect(withdrawals.count == 1)
        let bookingsAfterDrain = try await cluster.log.events(after: 0, limit: 10_000)
            .drop { if case .serverDrainRequested = $0.event { return false } else { return true } }
            .filter { if case .taskDispatched(let e) = $0.event { return e.serverID == gpu1 } else { return false } }
        #expect(bookingsAfterDrain.isEmpty)
        try await cluster.verifyNoOverBooking()
    }

    @Test func gpuBookingsNeverExceedTheFreeGPUs() async throws {
        let cluster = try Cluster()
        let fake = try FakeNvidiaSMI.install(.fourGPUsOneBusy, in: cluster.directory.path)
        try await cluster.attach(gpu1, maxTasks: 4)
        try cluster.startAgent(gpu1, nvidiaSMI: fake)
        var submitted: [TaskID] = []
        for index in 0..<3 {
            submitted.append(try await cluster.submit("tsk-gpu00000000\(index)", "echo $CUDA_VISIBLE_DEVICES > gpus.txt; sleep 1", gpus: 2, outputs: ["gpus.txt"]))
        }
        let tasks = submitted
        try await cluster.submit("tsk-gpu0000000x", "true", gpus: 8)
        try await cluster.run { cluster in
            var explained = false
            _ = try await cluster.waitUntil(check: { snapshot in
                let row = snapshot.servers[gpu1]!
                let booked = row.gpuBookings.map(\.index)
                #expect(Set(booked).count == booked.count, "a GPU was booked twice")
                #expect(!booked.contains(1), "GPU 1 is busy with another user's process")
                if row.gpus.count == 4, snapshot.tasks.rows.values.contains(where: { $0.status == .running }),
                    let waiting = snapshot.tasks.rows.values.first(where: { $0.status == .queued && $0.gpus == 2 })
                {
                    let why = Scheduler.explain(waiting, tasks: snapshot.tasks, servers: snapshot.servers)
                    #expect(why == "waiting: needs 2 GPUs; gpu-01: 1 of 4 free (2 booked by Touchstone tasks; GPU 1 busy with another user's process)")
                    explained = true
                }
            }) { snapshot in tasks.allSatisfy { snapshot.tasks[$0]?.status == .succeeded } }
            #expect(explained)
            let final = try await cluster.log.snapshot()
            for task in tasks {
                let visible = final.tasks[task]?.outputs["gpus.txt"]?.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(visible == "0,2", "\(task) saw \(visible ?? "nothing")")
            }
            let huge = try #require(final.tasks[TaskID(rawValue: "tsk-gpu0000000x")])
            #expect(huge.status == .queued)
            #expect(Scheduler.explain(huge, tasks: final.tasks, servers: final.servers) == "waiting: needs 8 GPUs; no server it may use has that many (the largest has 4)")
            #expect(final.servers[gpu1]!.foreignBusyGPUs == [1])
        }
        try await cluster.verifyNoOverBooking()
    }

    @Test func killingATasksProcessByHandFailsItWithinOneReconcileInterval() async throws {
        let cluster = try Cluster()
        try await cluster.attach(gpu1, maxTasks: 1)
        try cluster.startAgent(gpu1)
        let task = try await cluster.submit("tsk-kill00000000", "sleep 60")
        try await cluster.run { cluster in
            let running = try await cluster.waitUntil { $0.tasks[task]?.status == .running }
            let pid = try #require(running.tasks[task]?.pid)
            kill(-pid, SIGKILL)
            let killedAt = ContinuousClock.now
            let final = try await cluster.waitUntil(timeout: .seconds(10)) { $0.tasks[task]?.status.isTerminal == true }
            let elapsed = ContinuousClock.now - killedAt
            #expect(elapsed < .seconds(3), "took \(elapsed) with a 200 ms reconcile interval")
            let row = try #require(final.tasks[task])
            #expect(row.status == .failed)
            #expect(row.reason?.contains("signal 9") == true || row.exitCode == 137, "\(row.reason ?? "-")")
        }
    }

    @Test func aDrainDeadlineStopsTasksAndRequeuesThemElsewhere() async throws {
        let cluster = try Cluster()
        try await cluster.attach(gpu1, maxTasks: 1)
        try cluster.startAgent(gpu1)
        let task = try await cluster.submit("tsk-deadline0000", "sleep 3; echo done > out.txt", outputs: ["out.txt"])
        try await cluster.run { cluster in
            _ = try await cluster.waitUntil { $0.tasks[task]?.status == .running }
            try await cluster.attach(gpu2, maxTasks: 1)
            try cluster.startAgent(gpu2)
            try await cluster.log.append(
                .serverDrainRequested(ServerDrainRequested(serverID: gpu1, deadline: Date().addingTimeInterval(0.5), reason: "reboot")),
                metadata: Cluster.operatorMeta)
            let final = try await cluster.waitUntil { $0.tasks[task]?.status == .succeeded }
            let row = try #require(final.tasks[task])
            #expect(row.attempt == 2)
            #expect(row.serverID == gpu2)
            #expect(row.outputs["out.txt"] == "done\n")
            #expect(final.servers[gpu1]!.state == .detached)
        }
        let history = try await cluster.log.events(after: 0, limit: 10_000).filter { $0.stream == StreamName.task(task) }
        let finished = history.compactMap { if case .taskFinished(let e) = $0.event { return e } else { return nil } }
        #expect(finished.first?.failureClass == .infrastructure)
        #expect(finished.first?.reason?.contains("drain deadline") == true)
        #expect(history.contains { if case .taskRequeued = $0.event { return true } else { return false } })
        try await cluster.verifyNoOverBooking()
    }

    @Test func aSilentServerBecomesUnreachableAndItsTasksAreLostOnlyAfterLostAfter() async throws {
        let cluster = try Cluster(
            configuration: .init(
                statusInterval: .milliseconds(200), requestTimeout: .seconds(20),
                heartbeatTimeout: .milliseconds(500), missedHeartbeatsForUnreachable: 2, lostAfter: .seconds(3)))
        try await cluster.attach(gpu1, maxTasks: 1)
        try cluster.startAgent(gpu1)
        let task = try await cluster.submit("tsk-silent000000", "sleep 60")
        let pid = try await cluster.run { cluster in
            let running = try await cluster.waitUntil { $0.tasks[task]?.status == .running }
            let pid = try #require(running.tasks[task]?.pid)
            await cluster.killAgent(gpu1)
            let unreachable = try await cluster.waitUntil(timeout: .seconds(15)) { $0.servers[gpu1]?.state == .unreachable }
            let since = ContinuousClock.now
            #expect(unreachable.tasks[task]?.status == .running, "a task must not be lost as soon as its server is silent")
            let lost = try await cluster.waitUntil(timeout: .seconds(15)) { $0.tasks[task]?.status == .queued }
            #expect(ContinuousClock.now - since >= .seconds(2), "lost before lost_after")
            #expect(lost.tasks[task]?.reason?.contains("unreachable") == true)
            // Nothing is dispatched to the unreachable server: the requeued task waits.
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await cluster.log.snapshot().tasks[task]?.status == .queued)
            // The server comes back with the old attempt still running: cleanup stops it (it is not live in the log),
            // so the task never runs twice.
            try cluster.startAgent(gpu1)
            for _ in 0..<200 where kill(pid, 0) == 0 { try await Task.sleep(for: .milliseconds(100)) }
            #expect(kill(pid, 0) != 0, "the orphaned attempt survived the server's return")
            return pid
        }
        kill(-pid, SIGKILL)  // only if the expectation above failed
        let history = try await cluster.log.events(after: 0, limit: 10_000)
        let verdicts = history.compactMap { if case .serverLivenessChanged(let e) = $0.event { return e.reachable } else { return nil } }
        #expect(verdicts == [false, true])
        #expect(history.contains { if case .unrecognisedTaskFound(let e) = $0.event { e.taskID == task && e.attempt == 1 } else { false } })
        try await cluster.verifyNoOverBooking()
    }
}
