import ArgumentParser
import Domain
import EventStore
import Foundation
import Logging
import Operations
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

    @Argument(help: "The server's name, e.g. its hostname: 1–63 of a-z, 0-9, '-' and '.'.")
    var name: String

    @OptionGroup(title: "Attach options") var attach: AttachOptions

    @OptionGroup(title: "Transport options") var transportOptions: TransportOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard ServerID.isValid(name) else {
            throw ValidationError("server name \(name.debugDescription) must be \(ServerID.shape)")
        }
        guard (0...1024).contains(attach.maxTasks) else { throw ValidationError("--max-tasks must be 0–1024") }
        guard (2...16).contains(attach.channels) else { throw ValidationError("--channels must be 2–16") }
        _ = try parsedLabels()
    }

    /// The `--label` entries as a map.
    ///
    /// - Throws: ``ValidationError`` naming a malformed entry.
    func parsedLabels() throws -> [String: String] {
        var map: [String: String] = [:]
        for entry in attach.labels {
            let parsed: (label: String, value: String)
            do {
                parsed = try ServerLabels.parse(entry)
            } catch {
                throw ValidationError("--label \(error.message)")
            }
            if let earlier = map[parsed.label], earlier != parsed.value {
                throw ValidationError(
                    "--label \(parsed.label) is given twice (\(parsed.label)=\(earlier), \(parsed.label)=\(parsed.value)): "
                        + "a label has one value")
            }
            map[parsed.label] = parsed.value
        }
        return map
    }

    func run() async throws {
        let server = ServerID(rawValue: name)!
        let settings = try await transportOptions.resolveSettings(
            commandLine: transportOptions.commandLineSettings(global: global))
        var global = self.global
        global.stateDir = settings.text("stateDir")
        let log = try global.openLog(create: true)
        let agentKey = try attach.agentKey.map { try ServerRekey.parse($0) }
        let sealingKey = try attach.agentSealingKey.map { try ServerRekey.parseSealing($0) }
        if sealingKey != nil, agentKey == nil { throw CLIError("--agent-sealing-key needs --agent-key") }
        // The backend key agents on this host trust by default (keys/backend-trusted.pub), made on first attach.
        try await KeysSupport.initialize(global: global, log: log)
        let queues = try transportOptions.openQueues(
            settings: settings, queuePath: global.queuePath, logger: Logger(label: "touchstone.queues"))
        let queuePrefix = settings.text("queuePrefix") ?? BackendSettings.defaults.queuePrefix
        do {
            // Queues first: if this fails nothing is recorded, and a second attach creates them idempotently.
            for index in 0..<attach.channels {
                let channel = ChannelID(server: server, index: index)
                try await queues.createQueueIfNeeded(
                    named: ChannelQueues.requestQueue(prefix: queuePrefix, channel: channel),
                    attributes: QueueAttributes())
                try await queues.createQueueIfNeeded(
                    named: ChannelQueues.responseQueue(prefix: queuePrefix, channel: channel),
                    attributes: QueueAttributes())
            }
            // An attach states the labels anew: say which ones it drops, so that an attach to bring a server back
            // into service does not silently lose the labels tasks are constrained on.
            let before = try await log.readModel(ServerCapacity.self)[server]?.labels ?? [:]
            let given = try parsedLabels()
            let dropped = before.keys.filter { given[$0] == nil }.sorted()
            if !dropped.isEmpty {
                FileHandle.standardError.write(
                    Data(
                        ("note: labels dropped: \(dropped.map { "\($0)=\(before[$0]!)" }.joined(separator: ", ")) "
                            + "(an attach states the labels anew; pass --label again to keep them)\n").utf8))
            }
            try await log.append(
                .serverAttached(
                    ServerAttached(
                        serverID: server, maxTasks: attach.maxTasks, channels: attach.channels,
                        labels: attach.labels.isEmpty ? nil : try parsedLabels())),
                metadata: .init(actor: global.operatorActor))
            if let agentKey {
                try await log.append(
                    .keys(
                        .agentKeyPinned(
                            AgentKeyPinned(serverID: server, publicKey: agentKey, sealingKey: sealingKey, source: "operator"))),
                    metadata: .init(actor: global.operatorActor))
            }
        } catch {
            throw CLIError("\(error)")
        }
        let row = try await log.readModel(ServerCapacity.self)[server]
        switch global.format {
        case .json: print(Render.json(row))
        case .table:
            let shown = try parsedLabels().sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            print(
                "attached \(server): max-tasks \(attach.maxTasks), \(attach.channels) channels"
                    + (shown.isEmpty ? "" : ", labels \(shown.joined(separator: ","))"))
        }
    }
}

/// `server attach`'s own options, shown first in its `--help`.
struct AttachOptions: ParsableArguments {
    @Option(help: "The most Touchstone tasks the server may run at once (0–1024).")
    var maxTasks: Int

    @Option(help: "Queue pairs (channels) for the server, 2–16; channel 0 is control.")
    var channels: Int = 3

    @Option(
        name: .customLong("label"),
        help: "A label tasks can require with `task submit --constraint`, LABEL=VALUE (repeatable; an attach replaces the labels).")
    var labels: [String] = []

    @Option(
        help: ArgumentHelp(
            "The agent's public key (base64, as `touchstone-agent init` prints it) or @FILE; the backend accepts only "
                + "responses it signed. Without it, an agent on this host is pinned on first contact from the key it "
                + "publishes in the state directory."))
    var agentKey: String?

    @Option(
        help: ArgumentHelp(
            "The agent's X25519 sealing key for --secret-env values (base64, or @FILE: <workspace>/agent.seal.key.pub "
                + "after `touchstone-agent init`)."))
    var agentSealingKey: String?
}
