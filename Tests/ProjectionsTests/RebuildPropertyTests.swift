import Domain
import EventStore
import Foundation
import Projections
import TestSupport
import Testing

/// Property: for random event histories appended in random batches, the read models kept row by row inside each
/// append transaction equal a rebuild from position 0 (invariant 5), and every prefix's fold is what `replay(upTo:)`
/// returns.
@Suite struct RebuildPropertyTests {
    static func randomEvents(count: Int, using generator: inout SeededGenerator) -> [DomainEvent] {
        let servers = (1...3).map { ServerID(rawValue: "gpu-0\($0)")! }
        var tasks: [TaskID] = []
        var events: [DomainEvent] = []
        for _ in 0..<count {
            let server = servers.randomElement(using: &generator)!
            let channel = ChannelID(server: server, index: Int.random(in: 0..<3, using: &generator))
            let request = RequestID.make(now: Fixtures.epoch0, using: &generator)
            let task = tasks.randomElement(using: &generator)
            let attempt = Int.random(in: 1...2, using: &generator)
            switch Int.random(in: 0..<23, using: &generator) {
            case 0:
                events.append(.serverAttached(ServerAttached(serverID: server, maxTasks: Int.random(in: 0...3, using: &generator), channels: Int.random(in: 2...4, using: &generator))))
            case 1, 2:
                let id = TaskID.random(using: &generator)
                tasks.append(id)
                events.append(.taskSubmitted(TaskSubmitted(taskID: id, spec: Fixtures.spec())))
            case 3:
                guard let task else { continue }
                events.append(.taskDispatched(TaskDispatched(taskID: task, attempt: attempt, serverID: server, requestID: request, gpuIndices: Bool.random(using: &generator) ? [Int.random(in: 0...3, using: &generator)] : nil)))
            case 4:
                events.append(.requestSent(RequestSent(channel: channel, requestID: request, epoch: 0, sequence: Int64(events.count), command: Bool.random(using: &generator) ? "startTask" : "listTasks", taskID: task, expiresAt: Fixtures.epoch0, messageID: "m")))
            case 5:
                guard let task else { continue }
                events.append(.taskStarted(TaskStarted(taskID: task, attempt: attempt, serverID: server, pid: 9, startedAt: Fixtures.epoch0)))
            case 6:
                guard let task else { continue }
                events.append(.taskFinished(TaskFinished(taskID: task, attempt: attempt, serverID: Bool.random(using: &generator) ? server : nil, outcome: TaskOutcome.allCases.randomElement(using: &generator)!, exitCode: 0)))
            case 7:
                events.append(.responseReceived(ResponseReceived(channel: channel, requestID: request, epoch: 0, status: "ok", message: nil, agentTime: Fixtures.epoch0, messageID: "r")))
            case 8:
                events.append(.responseRejected(ResponseRejected(channel: channel, messageID: "x", reason: "malformed", requestID: nil, bodyPrefix: "")))
            case 10:
                events.append(.serverCapacitySet(ServerCapacitySet(serverID: server, maxTasks: Int.random(in: 0...3, using: &generator))))
            case 11:
                events.append(.serverDrainRequested(ServerDrainRequested(serverID: server, deadline: Bool.random(using: &generator) ? Fixtures.epoch0 : nil, reason: "r")))
            case 12:
                events.append(.serverDetachRequested(ServerDetachRequested(serverID: server, force: Bool.random(using: &generator))))
            case 13:
                events.append(.serverDetached(ServerDetached(serverID: server)))
            case 14:
                events.append(.serverLivenessChanged(ServerLivenessChanged(serverID: server, reachable: Bool.random(using: &generator), missedHeartbeats: 3)))
            case 15:
                let gpus = (0..<Int.random(in: 0...4, using: &generator)).map {
                    GPUDevice(index: $0, uuid: "GPU-\($0)", name: "A100", memoryTotalMiB: nil, memoryUsedMiB: nil, utilizationPercent: nil, foreignProcesses: Int.random(in: 0...1, using: &generator))
                }
                events.append(.serverGPUsObserved(ServerGPUsObserved(serverID: server, gpus: gpus, problem: nil)))
            case 16:
                guard let task else { continue }
                events.append(.taskDispatchWithdrawn(TaskDispatchWithdrawn(taskID: task, attempt: attempt, serverID: server, reason: "w")))
            case 17:
                guard let task else { continue }
                events.append(.taskRequeued(TaskRequeued(taskID: task, afterAttempt: attempt, reason: "q")))
            case 18:
                events.append(.unrecognisedTaskFound(UnrecognisedTaskFound(serverID: server, taskID: task ?? TaskID.random(using: &generator), attempt: attempt, reason: "u")))
            case 19:
                guard let task else { continue }
                events.append(.taskCancelRequested(TaskCancelRequested(taskID: task, reason: nil)))
            case 20:
                guard let task else { continue }
                events.append(.taskStartSending(TaskStartSending(taskID: task, attempt: attempt, requestID: request, serverID: server, channel: channel.index, expiresAt: Fixtures.epoch0)))
            case 21:
                events.append(.channelDesyncDetected(ChannelDesyncDetected(channel: channel, epoch: 0, reason: "unanswered", expectedRequestID: request)))
            case 22:
                events.append(.channelQueuesDrained(ChannelQueuesDrained(channel: channel, fromEpoch: 0, toEpoch: Int64.random(in: 1...5, using: &generator), requests: [], responses: [DrainedMessage(messageID: "d", summary: "s")])))
            default:
                events.append(.serverHelloReceived(ServerHelloReceived(serverID: server, agentVersion: "v", agentTime: Fixtures.epoch0, clockSkewMilliseconds: 0, runningTasks: [], gpuCount: 0)))
            }
        }
        return events
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func storedReadModelsEqualARebuild(seed: UInt64) async throws {
        let directory = TemporaryDirectory("property")
        defer { directory.remove() }
        var generator = SeededGenerator(seed: seed)
        let log = try TouchstoneLog(path: directory.file("log.db"))
        let events = Self.randomEvents(count: 150, using: &generator)
        var index = 0
        var incremental = ProjectionSet(position: 0, servers: .init(), tasks: .init(), channels: .init())
        while index < events.count {
            let size = Int.random(in: 1...6, using: &generator)
            let batch = Array(events[index..<min(index + size, events.count)])
            let stored = try await log.append(batch.map { .init($0, metadata: .init(actor: "test")) })
            for event in stored { incremental.apply(try ReadModels.decode(event)) }
            index += size
        }
        let result = try await log.verifyReadModels()
        #expect(result.mismatched == [], "seed \(seed)")
        let snapshot = try await log.snapshot()
        #expect(snapshot == incremental, "seed \(seed)")
        #expect(try await log.replay() == incremental, "seed \(seed)")
        // As of a middle position, replay equals folding just that prefix.
        let middle = Int64(events.count / 2)
        let prefix = try await log.store.read(after: 0, limit: Int(middle)).map(ReadModels.decode)
        var folded = ProjectionSet(position: 0, servers: .init(), tasks: .init(), channels: .init())
        for event in prefix { folded.apply(event) }
        #expect(try await log.replay(upTo: middle) == folded)
    }

    @Test func aForeignEventTypeFailsTheAppendAndNamesThePosition() async throws {
        let directory = TemporaryDirectory("foreign")
        defer { directory.remove() }
        let log = try TouchstoneLog(path: directory.file("log.db"))
        let error = await #expect(throws: EventStoreError.self) {
            try await log.store.append(
                [ProposedEvent(type: "martian.landed", schema: 1, payload: Data("{}".utf8), metadata: .init(actor: "x"))],
                to: "mars")
        }
        #expect(error?.code == .unknownEventType)
        #expect(error?.message.contains("position 1") == true)
        #expect(try await log.store.lastPosition() == 0)
    }
}
