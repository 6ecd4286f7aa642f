@preconcurrency import Crypto
import Domain
import EventStore
import Foundation
import Orchestrator
import Projections
import TestSupport
import Testing
import Transport
import Wire

/// Issue 12, "done when": with queue access and no backend key, nothing runs. A backend in this process and a real
/// agent, on one embedded queue; the attacker writes to the queues directly.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct SigningEndToEndTests {
    /// The `channel.response.rejected` events of a channel.
    static func rejections(_ cluster: Cluster, _ channel: ChannelID) async throws -> [ResponseRejected] {
        try await cluster.log.store.read(stream: StreamName.channel(channel)).map(ReadModels.decode).compactMap {
            if case .responseRejected(let e) = $0.event { e } else { nil }
        }
    }

    static func waitForRejection(_ cluster: Cluster, _ channel: ChannelID, reason: String) async throws -> ResponseRejected {
        for _ in 0..<400 {
            if let found = try await rejections(cluster, channel).first(where: { $0.reason == reason }) { return found }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("no \(reason) rejection; agents:\n\(cluster.agentLogs())")
        throw CancellationError()
    }

    @Test func aForgedStartSignedWithAnotherKeyIsRejectedAndLoggedAndNoProcessStarts() async throws {
        let cluster = try Cluster()
        try await cluster.attach(Fixtures.gpu1, maxTasks: 1)
        try cluster.startAgent(Fixtures.gpu1)
        let control = ChannelID(server: Fixtures.gpu1, index: 0)
        let requests = try cluster.queues.queue(named: ChannelQueues.requestQueue(prefix: "touchstone", channel: control))
        let responses = try cluster.queues.queue(named: ChannelQueues.responseQueue(prefix: "touchstone", channel: control))
        let marker = cluster.directory.file("pwned")
        try await cluster.run { cluster in
            _ = try await cluster.waitUntil { $0.servers[Fixtures.gpu1]?.agentVersion != nil }
            // The right format, the current epoch, signed with a key the agent never pinned.
            let forged = RequestEnvelope(
                requestID: .make(), server: Fixtures.gpu1, channel: 0, epoch: 0, sequence: 1, sentAt: Date(),
                expiresAt: Date().addingTimeInterval(60),
                command: .startTask(
                    StartTask(
                        taskID: TaskID(rawValue: "tsk-00000000f0f0"), attempt: 1,
                        spec: TaskSpec(command: ["/bin/sh", "-c", "echo pwned > \(marker)"]), backend: "touchstone")))
            _ = try await requests.send(
                WireCoding.encodeSigned(forged, with: Curve25519.Signing.PrivateKey()), groupID: "channel-0",
                deduplicationID: "forged")
            let logged = try await Self.waitForRejection(cluster, control, reason: "refused:unauthenticated")
            #expect(logged.requestID == nil)
            #expect(logged.bodyPrefix.contains("not signed by a trusted backend key"))
            // A response forged onto the response queue is not the agent's: rejected, never an answer or a desync.
            let fake = ResponseEnvelope(
                requestID: .make(), server: Fixtures.gpu1, channel: 0, epoch: 0, sequence: 9, agentTime: Date(),
                body: .taskList([]))
            _ = try await responses.send(
                WireCoding.encodeSigned(fake, with: Curve25519.Signing.PrivateKey()), groupID: "channel-0",
                deduplicationID: "fake")
            _ = try await Self.waitForRejection(cluster, control, reason: "badSignature")
            // The backend carries on: a real task runs.
            let task = try await cluster.submit("tsk-00000000f0f1", "true")
            _ = try await cluster.waitUntil { $0.tasks[task]?.status == .succeeded }
            let snapshot = try await cluster.log.snapshot()
            #expect(snapshot.channels[control]?.desyncs ?? 0 == 0)
        }
        #expect(!FileManager.default.fileExists(atPath: marker), "the forged task ran")
        #expect(cluster.agentLogs().contains("request refused"))
    }

    @Test func aReplayedValidRequestIsRejectedAndLogged() async throws {
        let cluster = try Cluster()
        try await cluster.attach(Fixtures.gpu1, maxTasks: 1)
        let control = ChannelID(server: Fixtures.gpu1, index: 0)
        let requests = try cluster.queues.queue(named: ChannelQueues.requestQueue(prefix: "touchstone", channel: control))
        try await cluster.run { cluster in
            // Someone with queue access copies the backend's first request (its hello) before the agent takes it.
            var copy: String?
            for _ in 0..<200 where copy == nil {
                if let message = try await requests.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: .seconds(30)).first {
                    copy = message.body
                    try await requests.changeVisibility(receiptHandle: message.receiptHandle, timeout: .zero)
                }
            }
            let stolen = try #require(copy)
            #expect(MessageSigning.verify(
                stolen, context: .request,
                trusting: try KeyFiles.publicKeys(from: "@" + KeyDirectory(stateDirectory: cluster.directory.path).trusted))
                != .unsigned)
            try cluster.startAgent(Fixtures.gpu1)
            _ = try await cluster.waitUntil { $0.servers[Fixtures.gpu1]?.agentVersion != nil }
            // The copy, put back after the original was answered.
            _ = try await requests.send(stolen, groupID: "channel-0", deduplicationID: "replay")
            let logged = try await Self.waitForRejection(cluster, control, reason: "refused:replayed")
            #expect(logged.requestID == nil)
            let snapshot = try await cluster.log.snapshot()
            #expect(snapshot.channels[control]?.desyncs ?? 0 == 0)
        }
    }
}
