import Domain
import Foundation
import Transport
import Wire

/// Injects transport faults into the channels' queues, as a misbehaving network or a confused peer would:
/// - `duplicate`: a request the agent has not yet taken is delivered twice (copied with a new deduplication ID): a
///   replay, which the agent refuses (`replayed`, docs/protocol.md);
/// - `delay`: a request is held invisible for a few seconds, as if a receiver took it and stalled past the
///   visibility timeout, and is then delivered late;
/// - `stale`: a response of an older epoch, or for a request nobody sent, appears on a response queue, signed with
///   the agent's own key (as a confused agent would send it: an unsigned one would only be refused as `badSignature`);
/// - `malformed`: garbage on a request or a response queue.
actor FaultInjector {
    let queues: any QueueProvider
    let prefix: String
    let servers: [ServerID]
    let channels: Int
    /// Stops (`true`) or continues (`false`) a server's agent with SIGSTOP/SIGCONT: a stalled agent lets requests
    /// wait on its queues, where they can be duplicated or delayed.
    let pause: @Sendable (ServerID, Bool) -> Void
    /// Signs a response as the server's agent does (its workspace key).
    let signResponse: @Sendable (ResponseEnvelope) throws -> String
    private var counts: [String: Int] = [:]

    init(
        queues: any QueueProvider, prefix: String, servers: [ServerID], channels: Int,
        pause: @escaping @Sendable (ServerID, Bool) -> Void,
        signResponse: @escaping @Sendable (ResponseEnvelope) throws -> String
    ) {
        self.signResponse = signResponse
        self.queues = queues
        self.prefix = prefix
        self.servers = servers
        self.channels = channels
        self.pause = pause
    }

    /// `duplicate:N delay:N stale:N malformed:N`.
    var summary: String {
        ["duplicate", "delay", "stale", "malformed", "missed", "failed"].map { "\($0):\(counts[$0] ?? 0)" }.joined(separator: ",")
    }

    func injectOne(_ random: inout SplitMix) async {
        let server = servers[random.next(in: 0...(servers.count - 1))]
        let kind = ["duplicate", "delay", "stale", "malformed"][random.next(in: 0...3)]
        // Requests to duplicate or delay: the control channel has one every status interval.
        let index = kind == "duplicate" || kind == "delay" ? (random.unit() < 0.7 ? 0 : 1) : random.next(in: 0...(channels - 1))
        let channel = ChannelID(server: server, index: index)
        let group = "channel-\(channel.index)"
        do {
            let requests = try await queues.openQueue(named: ChannelQueues.requestQueue(prefix: prefix, channel: channel))
            let responses = try await queues.openQueue(named: ChannelQueues.responseQueue(prefix: prefix, channel: channel))
            if kind == "duplicate" || kind == "delay" { pause(server, true) }
            defer { if kind == "duplicate" || kind == "delay" { pause(server, false) } }
            switch kind {
            case "duplicate":
                // Visibility 0: the original stays deliverable; the copy is a second delivery of the same request.
                guard let message = try await requests.receive(maxMessages: 1, waitTime: .seconds(2), visibilityTimeout: .zero).first
                else {
                    counts["missed", default: 0] += 1
                    return
                }
                _ = try await requests.send(message.body, groupID: group, deduplicationID: "dup-\(UUID().uuidString)")
            case "delay":
                guard try await requests.receive(maxMessages: 1, waitTime: .seconds(2), visibilityTimeout: .seconds(4)).first != nil
                else {
                    counts["missed", default: 0] += 1
                    return
                }
            case "stale":
                let response = ResponseEnvelope(
                    requestID: .make(), server: server, channel: channel.index, epoch: -1 + Int64(random.next(in: 0...1)),
                    sequence: 0, agentTime: Date(), body: .taskList([]))
                _ = try await responses.send(try signResponse(response), groupID: group, deduplicationID: UUID().uuidString)
            default:
                let garbage = "{\"v\":1,\"chaos\":\"\(UUID().uuidString)\"" + (random.unit() < 0.5 ? "" : "}")
                let queue = random.unit() < 0.5 ? requests : responses
                _ = try await queue.send(garbage, groupID: group, deduplicationID: UUID().uuidString)
            }
            counts[kind, default: 0] += 1
        } catch {
            counts["failed", default: 0] += 1
        }
    }
}
