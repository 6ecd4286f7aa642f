import Agent
import ArgumentParser
@preconcurrency import Crypto
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
        abstract: "Run tasks for a Touchstone backend on this server, polling its request queues.",
        version: TouchstoneVersion.current)

    @Argument(
        help: ArgumentHelp(
            "init: create this agent's key pair in the workspace (<workspace>/agent.key, mode 0600), print its public "
                + "key (base64, one line) and exit. Without it: run the agent."))
    var action: String?

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

    @Option(
        help: ArgumentHelp(
            "A backend public key to trust (base64), or @FILE of them, one a line, re-read when it changes "
                + "(repeatable). Default with the embedded queue: @<state dir>/keys/backend-trusted.pub next to "
                + "--queue-path."))
    var backendKey: [String] = []

    @Option(
        name: .customLong("allow-image"),
        help: "An image tasks may run in (docker runtime): an exact name, or a prefix ending in * (repeatable). Without it, only --default-image.")
    var allowedImages: [String] = []

    @Flag(help: "Let tasks run as processes (process runtime); without it a process-runtime agent runs nothing.")
    var allowProcessRuntime = false

    @Flag(help: "Let tasks run as root (the agent's user when it is root; a container's image user, which may be root).")
    var allowRoot = false

    @Option(help: "The user process-runtime tasks run as (a name or uid); their working directory is given to it.")
    var runAs: String?

    func validate() throws {
        if let action, action != "init" { throw ValidationError("unknown action \(action.debugDescription): init, or none") }
        guard ServerID.isValid(server) else { throw ValidationError("--server must be \(ServerID.shape)") }
        guard (2...16).contains(channels) else { throw ValidationError("--channels must be 2–16") }
        guard (1...20).contains(pollWait) else { throw ValidationError("--poll-wait must be 1–20 seconds") }
        guard drainDeadline >= 0 else { throw ValidationError("--drain-deadline must be 0 or more") }
        guard RuntimeKind(rawValue: runtime) != nil else { throw ValidationError("--runtime must be process or docker") }
        guard RuntimeOptions.PullPolicy(rawValue: imagePullPolicy) != nil else {
            throw ValidationError("--image-pull-policy must be never or if-missing")
        }
        if let runAs {
            guard RunAsUser.resolve(runAs) != nil else { throw ValidationError("--run-as \(runAs): no such user") }
            guard runtime == "process" else {
                throw ValidationError(
                    "--run-as is for the process runtime; a container runs as its image's user (allow it with --allow-root)")
            }
        }
        if let containerMemory, containerMemory <= 0 { throw ValidationError("--container-memory must be positive") }
        if let containerCpus, containerCpus <= 0 { throw ValidationError("--container-cpus must be positive") }
    }

    func run() async throws {
        if action == "init" {
            try AgentInit.run(server: ServerID(rawValue: server)!, workspace: Self.absolute(workspace))
            return
        }
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
        configuration.runtime.runAs = runAs.flatMap(RunAsUser.resolve)
        configuration.policy = RunPolicy(
            allowedImages: allowedImages, allowProcessRuntime: allowProcessRuntime, runAs: runAs, allowRoot: allowRoot)
        do {
            try WorkspaceLock.acquire(workspace: configuration.workspace)
        } catch {
            throw AgentStartError(description: error.description)
        }
        let transport: QueueTransport
        do {
            transport = try QueueTransport.fromSettings(
                transport: self.transport, queuePath: queuePath, region: sqsRegion, endpoint: sqsEndpoint)
        } catch {
            throw AgentStartError(description: "\(error)")
        }
        // The queues are made by `touchstone server attach`, never here: an agent started before its server is
        // attached, or under a name that is not attached, says so and stops instead of polling nothing.
        if case .embedded(let path) = transport, !FileManager.default.fileExists(atPath: path),
            !FileManager.default.fileExists(atPath: EmbeddedQueueLayout.directory(forPath: path))
        {
            throw AgentStartError(
                description: Self.notAttached(
                    serverID, channels: channels,
                    missing: "there are no queues at \(path) or \(EmbeddedQueueLayout.directory(forPath: path))"))
        }
        var queues: [(requests: any MessageQueue, responses: any MessageQueue)] = []
        do {
            let provider = try transport.makeProvider(logger: logger)
            for index in 0..<channels {
                let channel = ChannelID(server: serverID, index: index)
                let requestName = ChannelQueues.requestQueue(prefix: configuration.queuePrefix, channel: channel)
                let responseName = ChannelQueues.responseQueue(prefix: configuration.queuePrefix, channel: channel)
                var opened: [any MessageQueue] = []
                for name in [requestName, responseName] {
                    do {
                        opened.append(try await provider.openQueue(named: name))
                    } catch let error as QueueError where error.code == .queueDoesNotExist {
                        throw AgentStartError(
                            description: Self.notAttached(serverID, channels: channels, missing: "queue \(name) does not exist"))
                    }
                }
                queues.append((opened[0], opened[1]))
            }
        } catch let error as AgentStartError {
            throw error
        } catch {
            throw AgentStartError(description: "cannot open the queues (\(transport.summary)): \(error)")
        }
        do {
            configuration.signingKey = try KeyFiles.loadOrCreate(configuration.keyPath)
            configuration.sealingKey = try SecretSealing.loadOrCreateKey(configuration.sealingKeyPath)
            configuration.backendKeys = try Self.backendKeys(backendKey, queuePath: queuePath)
            _ = try configuration.backendKeys.load()
            if let keys = Self.coLocatedKeys(configuration.backendKeys) {
                // On the backend's host: publish this agent's public key where the backend pins it on first use.
                try Self.publish(
                    KeyFiles.text(of: configuration.signingKey.publicKey), at: keys.agent(serverID))
                if let sealing = configuration.sealingKey {
                    try Self.publish(SecretSealing.text(of: sealing.publicKey), at: keys.agentSealing(serverID))
                }
            }
        } catch {
            throw AgentStartError(description: "\(error)")
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
    /// The trusted backend keys: `--backend-key` values, else the state directory's `backend-trusted.pub` next to the
    /// embedded queue file.
    ///
    /// - Throws: ``KeyError`` for a bad value, or when there is neither a value nor a co-located key file.
    static func backendKeys(_ values: [String], queuePath: String?) throws(KeyError) -> BackendKeySource {
        guard values.isEmpty else {
            var source = BackendKeySource()
            for value in values {
                if value.hasPrefix("@") {
                    source.files.append(absolute(String(value.dropFirst())))
                } else {
                    source.keys.append(try KeyFiles.publicKey(value, source: "--backend-key"))
                }
            }
            return source
        }
        guard let queuePath else {
            throw KeyError("no backend key: pass --backend-key KEY or @FILE (`touchstone keys show` prints the key)")
        }
        let trusted = KeyDirectory(stateDirectory: (absolute(queuePath) as NSString).deletingLastPathComponent).trusted
        guard FileManager.default.fileExists(atPath: trusted) else {
            throw KeyError(
                "no backend key: \(trusted) does not exist; run `touchstone keys init` with the backend's state "
                    + "directory, or pass --backend-key KEY or @FILE")
        }
        return BackendKeySource(files: [trusted])
    }

    /// The backend's key directory when this agent reads its trusted keys straight from it (a `backend-trusted.pub`
    /// in a `keys` directory: the backend is on this host).
    static func coLocatedKeys(_ source: BackendKeySource) -> KeyDirectory? {
        for file in source.files {
            let url = URL(fileURLWithPath: file)
            guard url.lastPathComponent == "backend-trusted.pub", url.deletingLastPathComponent().lastPathComponent == "keys"
            else { continue }
            return KeyDirectory(stateDirectory: url.deletingLastPathComponent().deletingLastPathComponent().path)
        }
        return nil
    }

    /// Writes the agent's public key to `keys/agents/<server>.pub` in a co-located backend's state directory.
    static func publish(_ key: String, at path: String) throws(KeyError) {
        let directory = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw KeyError("cannot create \(directory): \(error.localizedDescription)")
        }
        let aside = path + ".\(getpid()).tmp"
        try KeyFiles.write(key + "\n", to: aside, mode: 0o644, exclusive: false)
        guard rename(aside, path) == 0 else { throw KeyError("cannot write \(path)") }
    }

    /// The one-line refusal of an agent whose server has no queues on the transport.
    static func notAttached(_ server: ServerID, channels: Int, missing: String) -> String {
        "server \(server) is not attached (\(missing)): run `touchstone server attach \(server) --max-tasks N"
            + (channels == 3 ? "" : " --channels \(channels)")
            + "` with the backend's state directory and transport first, then start this agent"
    }

    /// The workspace as an absolute path: tasks run in their own directories, so a relative path in a task's wrapper
    /// (its exit-code file) or in the process inventory's workspace filter would point elsewhere.
    static func absolute(_ path: String) -> String {
        let joined = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return URL(fileURLWithPath: joined).standardizedFileURL.path
    }
}
