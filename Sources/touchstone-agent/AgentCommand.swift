import Agent
import ArgumentParser
import Domain
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import Transport
import Wire

/// `touchstone-agent`: the daemon on one in-house server. It only dials out to its queues.
@main
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "touchstone-agent",
        abstract: "Run tasks for a Touchstone backend on this server, polling its request queues.")

    @Option(help: "This server's name, as attached in the backend.")
    var server: String

    @Option(help: "The queue transport: embedded or sqs. Default: $TOUCHSTONE_TRANSPORT, else embedded.")
    var transport: String?

    @Option(help: "The embedded queue file shared with the backend (its state dir's queues.db); embedded only.")
    var queuePath: String?

    @Option(help: "The SQS region (sqs transport). Default: $TOUCHSTONE_SQS_REGION, else $AWS_REGION.")
    var sqsRegion: String?

    @Option(help: "An SQS endpoint URL overriding the region's (sqs transport). Default: $TOUCHSTONE_SQS_ENDPOINT.")
    var sqsEndpoint: String?

    @Option(help: "The queue name prefix: queues are <prefix>-<server>-<n>-req.fifo / -resp.fifo.")
    var queuePrefix: String = "touchstone"

    @Option(help: "The workspace: the agent's journal and every task's directory.")
    var workspace: String

    @Option(help: "Queue pairs to poll; must match `server attach --channels`.")
    var channels: Int = 3

    @Option(help: "Seconds running tasks may finish after SIGTERM before they are stopped.")
    var drainDeadline: Int = 600

    @Option(help: "Long-poll wait per receive, in seconds (1–20).")
    var pollWait: Int = 20

    @Flag(help: "Do not put tasks in cgroups (process-group kill only).")
    var noCgroups = false

    @Option(help: "The nvidia-smi to query for GPUs (a name on PATH or a path).")
    var nvidiaSmi: String = "nvidia-smi"

    @Option(help: "Where tasks run: process (child processes) or docker (containers; docs/runtimes.md).")
    var runtime: String = "process"

    @Option(help: "The Docker engine's unix socket (docker runtime).")
    var dockerSocket: String = "/var/run/docker.sock"

    @Option(help: "Pull a task's image when it is not on the host: never or if-missing (docker runtime).")
    var imagePullPolicy: String = "never"

    @Option(help: "The image of tasks that name none (docker runtime); without it such tasks fail to start.")
    var defaultImage: String?

    @Option(help: "A memory limit per task container, in MiB (docker runtime).")
    var containerMemory: Int?

    @Option(help: "A CPU limit per task container, in CPUs, e.g. 1.5 (docker runtime).")
    var containerCpus: Double?

    func validate() throws {
        guard ServerID.isValid(server) else { throw ValidationError("--server must be 1–63 of a-z, 0-9 and -") }
        guard (2...16).contains(channels) else { throw ValidationError("--channels must be 2–16") }
        guard (1...20).contains(pollWait) else { throw ValidationError("--poll-wait must be 1–20 seconds") }
        guard drainDeadline >= 0 else { throw ValidationError("--drain-deadline must be 0 or more") }
        guard RuntimeKind(rawValue: runtime) != nil else { throw ValidationError("--runtime must be process or docker") }
        guard RuntimeOptions.PullPolicy(rawValue: imagePullPolicy) != nil else {
            throw ValidationError("--image-pull-policy must be never or if-missing")
        }
        if let containerMemory, containerMemory <= 0 { throw ValidationError("--container-memory must be positive") }
        if let containerCpus, containerCpus <= 0 { throw ValidationError("--container-cpus must be positive") }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let serverID = ServerID(rawValue: server)!
        let logger = Logger(label: "touchstone.agent.\(server)")
        var configuration = AgentConfiguration(
            serverID: serverID, queuePath: queuePath ?? "", queuePrefix: queuePrefix, channels: channels,
            workspace: Self.absolute(workspace), pollWait: .seconds(pollWait), drainDeadlineSeconds: drainDeadline,
            useCgroups: !noCgroups)
        configuration.nvidiaSMI = nvidiaSmi
        configuration.runtime.kind = RuntimeKind(rawValue: runtime) ?? .process
        configuration.runtime.dockerSocket = dockerSocket
        configuration.runtime.pullPolicy = RuntimeOptions.PullPolicy(rawValue: imagePullPolicy) ?? .never
        configuration.runtime.defaultImage = defaultImage
        configuration.runtime.memoryBytes = containerMemory.map { Int64($0) << 20 }
        configuration.runtime.nanoCPUs = containerCpus.map { Int64($0 * 1_000_000_000) }
        let transport: QueueTransport
        do {
            transport = try QueueTransport.fromSettings(
                transport: self.transport, queuePath: queuePath, region: sqsRegion, endpoint: sqsEndpoint)
        } catch {
            throw AgentStartError(description: "\(error)")
        }
        var queues: [(requests: any MessageQueue, responses: any MessageQueue)] = []
        do {
            let provider = try transport.makeProvider(logger: logger)
            for index in 0..<channels {
                let channel = ChannelID(server: serverID, index: index)
                let requestName = ChannelQueues.requestQueue(prefix: configuration.queuePrefix, channel: channel)
                let responseName = ChannelQueues.responseQueue(prefix: configuration.queuePrefix, channel: channel)
                // On SQS the queues are provisioned by `touchstone server attach`; the agent's IAM policy allows it
                // no CreateQueue (docs/sqs.md), so it only opens them. The embedded file is created on demand.
                if case .embedded = transport {
                    try await provider.createQueueIfNeeded(named: requestName, attributes: QueueAttributes())
                    try await provider.createQueueIfNeeded(named: responseName, attributes: QueueAttributes())
                }
                let requests = try await provider.openQueue(named: requestName)
                let responses = try await provider.openQueue(named: responseName)
                queues.append((requests, responses))
            }
        } catch {
            throw AgentStartError(description: "cannot open the queues (\(transport.summary)): \(error)")
        }
        logger.info("agent starting", metadata: ["transport": "\(transport.summary)"])
        let service = AgentService(configuration: configuration, queues: queues, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

struct AgentStartError: Error, CustomStringConvertible {
    var description: String
}

extension AgentCommand {
    /// The workspace as an absolute path: tasks run in their own directories, so a relative path in a task's wrapper
    /// (its exit-code file) or in the process inventory's workspace filter would point elsewhere.
    static func absolute(_ path: String) -> String {
        let joined = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return URL(fileURLWithPath: joined).standardizedFileURL.path
    }
}
