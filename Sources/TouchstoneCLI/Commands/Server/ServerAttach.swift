import ArgumentParser
import Domain
import EventStore
import Foundation
import Transport
import Projections
import Orchestrator
import Wire

/// `touchstone server attach NAME --max-tasks N`.
struct ServerAttach: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Attach (or re-attach) a server, creating its queue pairs; max-tasks 0 drains it.",
        discussion: """
            The queue pairs are created idempotently on the configured transport (--transport): on SQS each \
            request and response queue also gets its dead-letter queue (<name>-dlq.fifo) and redrive policy. \
            Attaching again creates whatever is missing.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The server's name: 1–63 of a-z, 0-9 and -.")
    var name: String

    @Option(help: "The most Touchstone tasks the server may run at once (0–1024).")
    var maxTasks: Int

    @Option(help: "Queue pairs (channels) for the server, 2–16; channel 0 is control.")
    var channels: Int = 3

    func validate() throws {
        guard ServerID.isValid(name) else {
            throw ValidationError("server name \(name.debugDescription) must be 1–63 of a-z, 0-9 and -")
        }
        guard (0...1024).contains(maxTasks) else { throw ValidationError("--max-tasks must be 0–1024") }
        guard (2...16).contains(channels) else { throw ValidationError("--channels must be 2–16") }
    }

    func run() async throws {
        let server = ServerID(rawValue: name)!
        let log = try global.openLog(create: true)
        let queues = try global.openQueues()
        do {
            // Queues first: if this fails nothing is recorded, and a second attach creates them idempotently.
            for index in 0..<channels {
                let channel = ChannelID(server: server, index: index)
                try await queues.createQueueIfNeeded(
                    named: ChannelQueues.requestQueue(prefix: global.queuePrefix, channel: channel),
                    attributes: QueueAttributes())
                try await queues.createQueueIfNeeded(
                    named: ChannelQueues.responseQueue(prefix: global.queuePrefix, channel: channel),
                    attributes: QueueAttributes())
            }
            try await log.append(
                .serverAttached(ServerAttached(serverID: server, maxTasks: maxTasks, channels: channels)),
                metadata: .init(actor: global.operatorActor))
        } catch {
            throw CLIError("\(error)")
        }
        let row = try await log.readModel(ServerCapacity.self)[server]
        switch global.format {
        case .json: print(Render.json(row))
        case .table: print("attached \(server): max-tasks \(maxTasks), \(channels) channels")
        }
    }
}
