import Domain
import EventStore
import Foundation
@testable import Projections
import Testing
import TestSupport
import Wire

@testable import Orchestrator

/// The pure deciders, over every task status and every server state they can meet (TCA-style: given a row and a
/// command, exactly these events or exactly this refusal).
@Suite struct DeciderTests {
    static let server = Fixtures.gpu1
    static let other = ServerID(rawValue: "gpu-99")!

    static func row(_ status: TaskStatus, attempt: Int = 1, server: ServerID? = DeciderTests.server, cancelled: Bool = false) -> TaskRow {
        var row = TaskRow(
            taskID: TaskID(rawValue: "tsk-00000000d001"), name: nil, command: ["true"], gpus: 0, status: status,
            attempt: attempt, serverID: status == .queued ? nil : server, submittedAt: Date(timeIntervalSince1970: 0),
            outputs: [:])
        row.cancelRequestedAt = cancelled ? Date(timeIntervalSince1970: 1) : nil
        row.streamVersion = 3
        return row
    }

    // MARK: cancel

    @Test(arguments: TaskStatus.allCases)
    func cancelIsAnIntentForEveryLiveStatusAndARefusalForAnEndedTask(status: TaskStatus) throws {
        let row = Self.row(status)
        if status.isTerminal {
            #expect(throws: Rejection(.alreadyEnded, "\(row.taskID) already ended (\(status.rawValue)); nothing to cancel")) {
                try Decide.task(.cancel(reason: "x"), given: row)
            }
        } else {
            #expect(
                try Decide.task(.cancel(reason: "x"), given: row)
                    == [.taskCancelRequested(TaskCancelRequested(taskID: row.taskID, reason: "x"))])
        }
    }

    @Test func aSecondCancelAddsNothingAndAnUnknownTaskIsRefused() throws {
        #expect(try Decide.task(.cancel(reason: nil), given: Self.row(.running, cancelled: true)).isEmpty)
        #expect(throws: Rejection.self) { try Decide.task(.cancel(reason: nil), given: nil) }
    }

    // MARK: withdraw and expire

    @Test(arguments: TaskStatus.allCases)
    func onlyABookingNotYetSentIsWithdrawn(status: TaskStatus) throws {
        let row = Self.row(status)
        let command = Decide.TaskCommand.withdraw(attempt: 1, server: Self.server, reason: "drained")
        if status == .dispatching {
            #expect(
                try Decide.task(command, given: row)
                    == [.taskDispatchWithdrawn(TaskDispatchWithdrawn(taskID: row.taskID, attempt: 1, serverID: Self.server, reason: "drained"))])
        } else {
            #expect(throws: Rejection.self) { try Decide.task(command, given: row) }
        }
        // Another attempt or another server is never withdrawn.
        #expect(throws: Rejection.self) { try Decide.task(.withdraw(attempt: 2, server: Self.server, reason: "r"), given: row) }
        #expect(throws: Rejection.self) { try Decide.task(.withdraw(attempt: 1, server: Self.other, reason: "r"), given: row) }
    }

    @Test(arguments: TaskStatus.allCases)
    func onlyAStartInFlightExpires(status: TaskStatus) throws {
        let row = Self.row(status)
        let events = try? Decide.task(.expireStart(attempt: 1, server: Self.server), given: row)
        if status == .starting || status == .dispatching {
            #expect(events?.count == 1)
            if case .taskDispatchWithdrawn(let e) = events?.first { #expect(e.attempt == 1) } else { Issue.record("no withdrawal") }
        } else {
            #expect(events == nil)
        }
        #expect(throws: Rejection.self) { try Decide.task(.expireStart(attempt: 2, server: Self.server), given: row) }
    }

    // MARK: lose

    @Test(arguments: TaskStatus.allCases, [1, 3])
    func aLiveAttemptIsLostAndRetriedUnderThePolicy(status: TaskStatus, attempt: Int) throws {
        let row = Self.row(status, attempt: attempt)
        let command = Decide.TaskCommand.lose(attempt: attempt, reason: "gone", maxAttempts: 3)
        guard [.dispatching, .starting, .running].contains(status) else {
            #expect(throws: Rejection.self) { try Decide.task(command, given: row) }
            return
        }
        let events = try Decide.task(command, given: row)
        guard case .taskFinished(let finished) = events.first else {
            Issue.record("no task.finished")
            return
        }
        #expect(finished.outcome == .lost)
        #expect(finished.failureClass == .infrastructure)
        // Retried while attempts remain (attempt 1 of 3), final at the last (attempt 3 of 3).
        #expect(events.count == (attempt < 3 ? 2 : 1))
        #expect(throws: Rejection.self) {
            try Decide.task(.lose(attempt: attempt + 1, reason: "r", maxAttempts: 3), given: row)
        }
    }

    // MARK: servers

    static func serverRow(booked: Int, detachRequested: Bool = false, detached: Bool = false, reachable: Bool = true) -> ServerRow {
        var row = ServerRow(
            serverID: Self.server, state: .attached, maxTasks: 2, channels: 3,
            booked: (0..<booked).map { TaskAttempt(taskID: TaskID(rawValue: "tsk-00000000e00\($0)"), attempt: 1) },
            running: [], attachedAt: Date(timeIntervalSince1970: 0))
        row.detachRequested = detachRequested ? DetachRequest(force: false, requestedBy: "op", requestedAt: Date(timeIntervalSince1970: 0)) : nil
        row.detached = detached
        row.reachable = reachable
        return row
    }

    @Test(arguments: [0, 1, 2], [false, true])
    func detachIsAtOnceWhenIdleRefusedWhileBusyAndForcedByDrainingNow(booked: Int, force: Bool) throws {
        let row = Self.serverRow(booked: booked)
        let now = Date(timeIntervalSince1970: 100)
        if booked == 0 {
            #expect(
                try Decide.server(.detach(force: force), given: row, now: now) == [
                    .serverDetachRequested(ServerDetachRequested(serverID: Self.server, force: force)),
                    .serverDetached(ServerDetached(serverID: Self.server)),
                ])
        } else if force {
            #expect(
                try Decide.server(.detach(force: true), given: row, now: now) == [
                    .serverDrainRequested(ServerDrainRequested(serverID: Self.server, deadline: now, reason: "detach --force")),
                    .serverDetachRequested(ServerDetachRequested(serverID: Self.server, force: true)),
                ])
        } else {
            #expect(throws: Rejection.self) { try Decide.server(.detach(force: false), given: row, now: now) }
        }
    }

    @Test(arguments: [-1, 0, 1, 1_024, 1_025])
    func capacityIsKeptInRange(maxTasks: Int) throws {
        let row = Self.serverRow(booked: 1)
        if (0...1_024).contains(maxTasks) {
            #expect(
                try Decide.server(.setCapacity(maxTasks), given: row)
                    == [.serverCapacitySet(ServerCapacitySet(serverID: Self.server, maxTasks: maxTasks))])
        } else {
            #expect(throws: Rejection.self) { try Decide.server(.setCapacity(maxTasks), given: row) }
        }
    }

    @Test(arguments: [false, true], [0, 1])
    func aDetachCompletesOnlyWhenRequestedAndNothingIsBooked(requested: Bool, booked: Int) throws {
        let row = Self.serverRow(booked: booked, detachRequested: requested)
        if requested && booked == 0 {
            #expect(try Decide.server(.completeDetach, given: row) == [.serverDetached(ServerDetached(serverID: Self.server))])
        } else {
            #expect(throws: Rejection.self) { try Decide.server(.completeDetach, given: row) }
        }
        #expect(throws: Rejection.self) { try Decide.server(.completeDetach, given: Self.serverRow(booked: 0, detachRequested: true, detached: true)) }
    }

    @Test(arguments: [false, true], [false, true])
    func livenessIsRecordedOnlyWhenItFlips(was: Bool, now: Bool) throws {
        let events = try Decide.server(.liveness(reachable: now, missed: 3), given: Self.serverRow(booked: 0, reachable: was))
        #expect(events.count == (was == now ? 0 : 1))
    }

    @Test func aDrainIsRecordedAndAnUnknownServerIsRefused() throws {
        let deadline = Date(timeIntervalSince1970: 50)
        #expect(
            try Decide.server(.drain(deadline: deadline, reason: "kernel"), given: Self.serverRow(booked: 1))
                == [.serverDrainRequested(ServerDrainRequested(serverID: Self.server, deadline: deadline, reason: "kernel"))])
        #expect(throws: Rejection.self) { try Decide.server(.drain(deadline: nil, reason: nil), given: nil) }
    }

    // MARK: time-based rules

    @Test func theNextDueRuleIsTheEarliestDrainDeadlineOrLostAfter() {
        let now = Date(timeIntervalSince1970: 1_000)
        var draining = Self.serverRow(booked: 1)
        draining.drain = DrainInfo(reason: nil, requestedBy: "op", requestedAt: now, deadline: now.addingTimeInterval(60), tasksAtStart: 1)
        var unreachable = Self.serverRow(booked: 1, reachable: false)
        unreachable.unreachableSince = now.addingTimeInterval(-290)
        // lostAfter counts on the monotonic clock (how long the backend has seen it unreachable), never from the
        // row's wall-clock `unreachableSince`: a wall clock a year ahead changes nothing.
        let seen: [ServerID: Duration] = [Self.server: .seconds(290)]
        #expect(Backend.nextDue([draining], lostAfter: .seconds(300), now: now, unreachableFor: [:]) == .seconds(60))
        #expect(Backend.nextDue([draining, unreachable], lostAfter: .seconds(300), now: now, unreachableFor: seen) == .seconds(10))
        #expect(
            Backend.nextDue(
                [unreachable], lostAfter: .seconds(300), now: now.addingTimeInterval(365 * 86_400), unreachableFor: seen)
                == .seconds(10))
        #expect(Backend.nextDue([Self.serverRow(booked: 0)], lostAfter: .seconds(300), now: now, unreachableFor: [:]) == nil)
    }

    // MARK: silence

    @Test func aSilentRequestIsResentThenTheChannelIsDrained() {
        let policy = ChannelClient.SilencePolicy(resendWait: .seconds(10), resends: 2)
        #expect(ChannelClient.onSilence(resendsSoFar: 0, policy: policy) == .seconds(10))
        #expect(ChannelClient.onSilence(resendsSoFar: 1, policy: policy) == .seconds(10))
        #expect(ChannelClient.onSilence(resendsSoFar: 2, policy: policy) == nil)
        #expect(ChannelClient.onSilence(resendsSoFar: 0, policy: .init(resendWait: .seconds(1), resends: 0)) == nil)
    }
}
