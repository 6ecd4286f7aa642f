import Domain
import EventStore
import Foundation
import Logging
@testable import Orchestrator
import Projections
import TestSupport
import Testing
import Transport
import Wire

/// A queue operation that fails is an event in the log, where an operator sees it.
@Suite struct TransportFailureTests {
    @Test func aMissingQueueIsRecordedAsATransportFailure() async throws {
        let directory = TemporaryDirectory("transport-failure")
        defer { directory.remove() }
        let log = try TouchstoneLog(path: directory.file("touchstone.db"))
        let queues = try EmbeddedQueueStore(path: directory.file("queues.db"))
        try await log.append(.serverAttached(ServerAttached(serverID: Fixtures.gpu1, maxTasks: 1, channels: 2)), metadata: .init(actor: "test"))
        try queues.createQueue(name: "req.fifo")
        try queues.createQueue(name: "resp.fifo")
        let channel = ChannelID(server: Fixtures.gpu1, index: 0)
        var configuration = BackendConfiguration()
        configuration.keys = try BackendKeys(stateDirectory: directory.path, log: log)
        let client = ChannelClient(
            channel: channel, requests: try queues.queue(named: "req.fifo"), responses: try queues.queue(named: "resp.fifo"),
            log: log, state: nil, configuration: configuration, logger: Logger(label: "test"))
        try queues.deleteQueue(name: "req.fifo")
        let error = await #expect(throws: QueueError.self) { try await client.call(.hello, delivery: .seconds(1)) }
        #expect(error?.code == .queueDoesNotExist)
        let events = try await log.events(after: 0)
        guard case .transportFailed(let failure) = events.last?.event else { Issue.record("\(events.map(\.event))"); return }
        #expect(failure.operation == "send")
        #expect(failure.code == "queueDoesNotExist")
        let row = try #require(try await log.readModel(ChannelSync.self)[channel])
        #expect(row.transportFailures == 1)
        #expect(row.lastTransportError?.hasPrefix("queueDoesNotExist") == true)
    }
}
