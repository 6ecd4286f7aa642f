import Domain
import Foundation
@testable import Projections
import TestSupport
import Testing

@Suite struct TaskBoardTests {
    let taskA = Fixtures.taskA
    let gpu1 = Fixtures.gpu1
    let request = Fixtures.request(1)

    func submitted() -> RecordedEvent<DomainEvent> {
        Fixtures.recorded(.taskSubmitted(TaskSubmitted(taskID: taskA, spec: TaskSpec(name: "svm", command: ["python3", "t.py"], gpus: 1))), at: 1)
    }

    func dispatched(at position: Int64 = 2, attempt: Int = 1) -> RecordedEvent<DomainEvent> {
        Fixtures.recorded(.taskDispatched(TaskDispatched(taskID: taskA, attempt: attempt, serverID: gpu1, requestID: request)), at: position)
    }

    func sent(at position: Int64 = 3) -> RecordedEvent<DomainEvent> {
        Fixtures.recorded(
            .requestSent(
                RequestSent(
                    channel: ChannelID(server: gpu1, index: 2), requestID: request, epoch: 0, sequence: 1,
                    command: "startTask", taskID: taskA, expiresAt: Fixtures.epoch0, messageID: "m1")), at: position)
    }

    @Test func submissionQueuesTheTask() {
        let board = TaskBoard(replaying: [submitted()])
        #expect(board[taskA]?.streamVersion == 1)
        #expect(
            board[taskA]?.ignoringVersion
                == TaskRow(
                    taskID: taskA, name: "svm", command: ["python3", "t.py"], gpus: 1, status: .queued, attempt: 0,
                    submittedAt: Fixtures.epoch0.addingTimeInterval(1), outputs: [:]))
    }

    @Test func dispatchThenSendThenStartThenFinish() {
        var board = TaskBoard(replaying: [submitted()])
        var expected = board[taskA]!

        board.apply(dispatched())
        expected.status = .dispatching
        expected.attempt = 1
        expected.serverID = gpu1
        expected.requestID = request
        expected.dispatchedAt = Fixtures.epoch0.addingTimeInterval(2)
        #expect(board[taskA]?.ignoringVersion == expected.ignoringVersion)

        board.apply(sent())
        expected.status = .starting
        expected.channel = 2
        expected.startDeliverBy = Fixtures.epoch0  // the request's delivery deadline (`expiresAt`)
        #expect(board[taskA]?.ignoringVersion == expected.ignoringVersion)

        let startedAt = Fixtures.epoch0.addingTimeInterval(3.5)
        board.apply(Fixtures.recorded(.taskStarted(TaskStarted(taskID: taskA, attempt: 1, serverID: gpu1, pid: 42, startedAt: startedAt)), at: 4))
        expected.status = .running
        expected.pid = 42
        expected.startedAt = startedAt
        expected.runningObservedAt = Fixtures.epoch0.addingTimeInterval(4)  // when the log learned it (position 4)
        #expect(board[taskA]?.ignoringVersion == expected.ignoringVersion)

        let endedAt = Fixtures.epoch0.addingTimeInterval(9)
        board.apply(
            Fixtures.recorded(
                .taskFinished(
                    TaskFinished(
                        taskID: taskA, attempt: 1, serverID: gpu1, outcome: .failed, exitCode: 3, failureClass: .user,
                        reason: "exit code 3", outputs: ["m.json": "{}"], endedAt: endedAt)), at: 5))
        expected.status = .failed
        expected.exitCode = 3
        expected.failureClass = .user
        expected.reason = "exit code 3"
        expected.outputs = ["m.json": "{}"]
        expected.finishedAt = endedAt
        #expect(board[taskA]?.ignoringVersion == expected.ignoringVersion)
    }

    @Test func reportsOfAnotherAttemptOrAfterTheEndChangeNothing() {
        var board = TaskBoard(replaying: [submitted(), dispatched(attempt: 2)])
        let before = board
        board.apply(Fixtures.recorded(.taskStarted(TaskStarted(taskID: taskA, attempt: 1, serverID: gpu1, pid: 1, startedAt: Fixtures.epoch0)), at: 3))
        #expect(board.ignoringVersions == before.ignoringVersions)

        board.apply(Fixtures.recorded(.taskFinished(TaskFinished(taskID: taskA, attempt: 2, serverID: gpu1, outcome: .succeeded, exitCode: 0)), at: 4))
        let finished = board
        board.apply(Fixtures.recorded(.taskFinished(TaskFinished(taskID: taskA, attempt: 2, serverID: gpu1, outcome: .failed, exitCode: 1)), at: 5))
        #expect(board.ignoringVersions == finished.ignoringVersions)
        #expect(board[taskA]?.status == .succeeded)
    }

    @Test func aSendForAnotherRequestDoesNotMarkStarting() {
        var board = TaskBoard(replaying: [submitted(), dispatched()])
        board.apply(
            Fixtures.recorded(
                .requestSent(
                    RequestSent(
                        channel: ChannelID(server: gpu1, index: 1), requestID: Fixtures.request(99), epoch: 0,
                        sequence: 1, command: "startTask", taskID: taskA, expiresAt: Fixtures.epoch0, messageID: "m")),
                at: 3))
        #expect(board[taskA]?.status == .dispatching)
    }
}

@Suite struct ServerCapacityTests {
    let gpu1 = Fixtures.gpu1

    @Test func attachBookStartFinish() {
        var capacity = ServerCapacity(replaying: [
            Fixtures.recorded(.serverAttached(ServerAttached(serverID: gpu1, maxTasks: 2, channels: 3)), at: 1)
        ])
        var expected = ServerRow(
            serverID: gpu1, state: .attached, maxTasks: 2, channels: 3, booked: [], running: [],
            attachedAt: Fixtures.epoch0.addingTimeInterval(1))
        expected.streamVersion = 1  // the attach was version 1 of server/gpu-01
        #expect(capacity[gpu1] == expected)

        let a1 = TaskAttempt(taskID: Fixtures.taskA, attempt: 1)
        capacity.apply(Fixtures.recorded(.taskDispatched(TaskDispatched(taskID: Fixtures.taskA, attempt: 1, serverID: gpu1, requestID: Fixtures.request(1))), at: 2))
        expected.booked = [a1]
        #expect(capacity[gpu1] == expected)
        #expect(capacity[gpu1]?.freeSlots == 1)

        capacity.apply(Fixtures.recorded(.taskStarted(TaskStarted(taskID: Fixtures.taskA, attempt: 1, serverID: gpu1, pid: 7, startedAt: Fixtures.epoch0)), at: 3))
        expected.running = [a1]
        #expect(capacity[gpu1] == expected)

        capacity.apply(Fixtures.recorded(.taskFinished(TaskFinished(taskID: Fixtures.taskA, attempt: 1, serverID: gpu1, outcome: .succeeded, exitCode: 0)), at: 4))
        expected.booked = []
        expected.running = []
        #expect(capacity[gpu1] == expected)
    }

    @Test func maxTasksZeroDrainsThenDetaches() {
        var capacity = ServerCapacity(replaying: [
            Fixtures.recorded(.serverAttached(ServerAttached(serverID: gpu1, maxTasks: 1, channels: 3)), at: 1),
            Fixtures.recorded(.taskDispatched(TaskDispatched(taskID: Fixtures.taskA, attempt: 1, serverID: gpu1, requestID: Fixtures.request(1))), at: 2),
            Fixtures.recorded(.serverAttached(ServerAttached(serverID: gpu1, maxTasks: 0, channels: 3)), at: 3),
        ])
        #expect(capacity[gpu1]?.state == .draining)
        capacity.apply(Fixtures.recorded(.taskFinished(TaskFinished(taskID: Fixtures.taskA, attempt: 1, serverID: gpu1, outcome: .succeeded)), at: 4))
        #expect(capacity[gpu1]?.state == .detached)
    }

    @Test func helloAndResponsesRecordContact() {
        var capacity = ServerCapacity(replaying: [
            Fixtures.recorded(.serverAttached(ServerAttached(serverID: gpu1, maxTasks: 1, channels: 3)), at: 1)
        ])
        capacity.apply(Fixtures.recorded(.serverHelloReceived(ServerHelloReceived(serverID: gpu1, agentVersion: "0.1.0", agentTime: Fixtures.epoch0, clockSkewMilliseconds: -12, runningTasks: [], gpuCount: 4)), at: 2))
        #expect(capacity[gpu1]?.agentVersion == "0.1.0")
        #expect(capacity[gpu1]?.clockSkewMilliseconds == -12)
        #expect(capacity[gpu1]?.gpuCount == 4)
        #expect(capacity[gpu1]?.lastContact == Fixtures.epoch0.addingTimeInterval(2))
    }
}

@Suite struct ChannelSyncTests {
    let channel = ChannelID(server: Fixtures.gpu1, index: 1)

    @Test func attachCreatesChannelsAndRequestsTrackOutstanding() {
        var sync = ChannelSync(replaying: [
            Fixtures.recorded(.serverAttached(ServerAttached(serverID: Fixtures.gpu1, maxTasks: 1, channels: 3)), at: 1)
        ])
        #expect(sync.rows.count == 3)
        sync.apply(Fixtures.recorded(.requestSent(RequestSent(channel: channel, requestID: Fixtures.request(1), epoch: 0, sequence: 1, command: "hello", taskID: nil, expiresAt: Fixtures.epoch0, messageID: "m1")), at: 2))
        #expect(sync[channel]?.outstanding?.requestID == Fixtures.request(1))
        #expect(sync[channel]?.lastSequence == 1)
        sync.apply(Fixtures.recorded(.responseRejected(ResponseRejected(channel: channel, messageID: "x", reason: "malformed", requestID: nil, bodyPrefix: "{")), at: 3))
        #expect(sync[channel]?.responsesRejected == 1)
        #expect(sync[channel]?.outstanding != nil)
        sync.apply(Fixtures.recorded(.responseReceived(ResponseReceived(channel: channel, requestID: Fixtures.request(1), epoch: 0, status: "ok", message: nil, agentTime: Fixtures.epoch0, messageID: "r1")), at: 4))
        #expect(sync[channel]?.outstanding == nil)
        #expect(sync[channel]?.responsesReceived == 1)
        #expect(sync[channel]?.requestsSent == 1)
    }
}

extension TaskRow {
    /// The row without its stream version, for comparing states across events that only bump the version.
    var ignoringVersion: TaskRow {
        var copy = self
        copy.streamVersion = 0
        return copy
    }
}

extension TaskBoard {
    var ignoringVersions: [String: TaskRow] { rows.mapValues(\.ignoringVersion) }
}

@Suite struct LifecycleFoldTests {
    let gpu1 = Fixtures.gpu1
    let a1 = TaskAttempt(taskID: Fixtures.taskA, attempt: 1)

    func events(_ list: [DomainEvent]) -> [RecordedEvent<DomainEvent>] {
        list.enumerated().map { Fixtures.recorded($1, at: Int64($0 + 1), actor: "operator:alice") }
    }

    @Test func drainRecordsWhoWhyAndProgress() {
        let history = events([
            .serverAttached(ServerAttached(serverID: gpu1, maxTasks: 2, channels: 3)),
            .taskSubmitted(TaskSubmitted(taskID: Fixtures.taskA, spec: Fixtures.spec())),
            .taskDispatched(TaskDispatched(taskID: Fixtures.taskA, attempt: 1, serverID: gpu1, requestID: Fixtures.request(1), gpuIndices: [3])),
            .serverDrainRequested(ServerDrainRequested(serverID: gpu1, deadline: Fixtures.epoch0, reason: "kernel update")),
        ])
        var capacity = ServerCapacity(replaying: history)
        let row = capacity[gpu1]!
        #expect(row.state == .draining)
        #expect(row.maxTasks == 0)
        #expect(row.drain == DrainInfo(reason: "kernel update", requestedBy: "operator:alice", requestedAt: Fixtures.epoch0.addingTimeInterval(4), deadline: Fixtures.epoch0, tasksAtStart: 1))
        #expect(row.gpuBookings == [GPUBooking(index: 3, attempt: a1)])
        capacity.apply(Fixtures.recorded(.taskFinished(TaskFinished(taskID: Fixtures.taskA, attempt: 1, serverID: gpu1, outcome: .succeeded)), at: 5))
        #expect(capacity[gpu1]?.state == .detached)
        #expect(capacity[gpu1]?.gpuBookings == [])
        capacity.apply(Fixtures.recorded(.serverCapacitySet(ServerCapacitySet(serverID: gpu1, maxTasks: 3)), at: 6))
        #expect(capacity[gpu1]?.state == .attached)
        #expect(capacity[gpu1]?.drain == nil)
    }

    @Test func withdrawnDispatchReleasesTheSlotAndQueuesTheTaskAgain() {
        let history = events([
            .serverAttached(ServerAttached(serverID: gpu1, maxTasks: 1, channels: 3)),
            .taskSubmitted(TaskSubmitted(taskID: Fixtures.taskA, spec: Fixtures.spec())),
            .taskDispatched(TaskDispatched(taskID: Fixtures.taskA, attempt: 1, serverID: gpu1, requestID: Fixtures.request(1))),
            .taskDispatchWithdrawn(TaskDispatchWithdrawn(taskID: Fixtures.taskA, attempt: 1, serverID: gpu1, reason: "draining")),
        ])
        #expect(ServerCapacity(replaying: history)[gpu1]?.booked == [])
        let row = TaskBoard(replaying: history)[Fixtures.taskA]!
        #expect(row.status == .queued)
        #expect(row.attempt == 1)
        #expect(row.serverID == nil)
        #expect(row.reason == "draining")
    }

    @Test func requeueAfterAnInfrastructureFailureQueuesTheNextAttempt() {
        let history = events([
            .taskSubmitted(TaskSubmitted(taskID: Fixtures.taskA, spec: Fixtures.spec())),
            .taskDispatched(TaskDispatched(taskID: Fixtures.taskA, attempt: 1, serverID: gpu1, requestID: Fixtures.request(1))),
            .taskFinished(TaskFinished(taskID: Fixtures.taskA, attempt: 1, serverID: gpu1, outcome: .lost, failureClass: .infrastructure, reason: "gone")),
            .taskRequeued(TaskRequeued(taskID: Fixtures.taskA, afterAttempt: 1, reason: "retrying")),
        ])
        var board = TaskBoard(replaying: history)
        let row = board[Fixtures.taskA]!
        #expect(row.status == .queued)
        #expect(row.attempt == 1)
        #expect(row.reason == "retrying")
        // The next attempt starts with none of the last attempt's results.
        board.apply(Fixtures.recorded(.taskDispatched(TaskDispatched(taskID: Fixtures.taskA, attempt: 2, serverID: gpu1, requestID: Fixtures.request(2))), at: 5))
        let next = board[Fixtures.taskA]!
        #expect(next.finishedAt == nil && next.exitCode == nil && next.failureClass == nil && next.reason == nil && next.outputs.isEmpty)
    }
}
