import Agent
import ArgumentParser
@preconcurrency import Crypto
import Domain
import Foundation
import Logging
import Operations
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

    @Option(help: AgentSettings.help("server")) var server: String?
    @Option(help: AgentSettings.help("transport")) var transport: String?
    @Option(help: AgentSettings.help("queuePath")) var queuePath: String?
    @Option(help: AgentSettings.help("sqs.region")) var sqsRegion: String?
    @Option(help: AgentSettings.help("sqs.endpoint")) var sqsEndpoint: String?
    @Option(help: AgentSettings.help("queuePrefix")) var queuePrefix: String?
    @Option(help: AgentSettings.help("workspace")) var workspace: String?
    @Option(help: AgentSettings.help("channels")) var channels: Int?
    @Option(help: AgentSettings.help("drainDeadline")) var drainDeadline: Int?
    @Option(help: AgentSettings.help("pollWait")) var pollWait: Int?
    @Flag(help: "Do not put tasks in cgroups (process-group kill only): the `cgroups: false` setting.")
    var noCgroups = false
    @Option(help: AgentSettings.help("nvidiaSmi")) var nvidiaSmi: String?
    @Option(help: AgentSettings.help("runtime")) var runtime: String?
    @Option(help: AgentSettings.help("docker.socket")) var dockerSocket: String?
    @Option(help: AgentSettings.help("docker.imagePullPolicy")) var imagePullPolicy: String?
    @Option(help: AgentSettings.help("docker.defaultImage")) var defaultImage: String?
    @Option(help: AgentSettings.help("docker.memory")) var containerMemory: Int?
    @Option(help: AgentSettings.help("docker.cpus")) var containerCpus: Double?
    @Option(help: AgentSettings.help("log.format")) var logFormat: String?
    @Option(help: AgentSettings.help("log.level")) var logLevel: String?

    @Option(
        help: ArgumentHelp(
            "The agent's YAML configuration file (docs/configuration.md): the command line, then the environment, "
                + "then this file, then the defaults. Default: $TOUCHSTONE_AGENT_CONFIG, else none."))
    var config: String?

    @Flag(help: "Print the resolved configuration and each value's source (secrets as <secret>), then exit.")
    var showConfig = false

    @Flag(help: "Print every configuration key (type, unit, default, range) as a Markdown table, then exit.")
    var configKeys = false

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
        if let runAs {
            guard RunAsUser.resolve(runAs) != nil else { throw ValidationError("--run-as \(runAs): no such user") }
            guard (runtime ?? "process") == "process" else {
                throw ValidationError(
                    "--run-as is for the process runtime; a container runs as its image's user (allow it with --allow-root)")
            }
        }
    }

    /// The options given on this command line, by configuration key.
    var commandLineSettings: [String: String] {
        let given: [(String, (any CustomStringConvertible)?)] = [
            ("server", server), ("transport", transport), ("queuePath", queuePath), ("sqs.region", sqsRegion),
            ("sqs.endpoint", sqsEndpoint), ("queuePrefix", queuePrefix), ("workspace", workspace),
            ("channels", channels), ("drainDeadline", drainDeadline), ("pollWait", pollWait),
            ("cgroups", noCgroups ? "false" : nil), ("nvidiaSmi", nvidiaSmi), ("runtime", runtime),
            ("docker.socket", dockerSocket), ("docker.imagePullPolicy", imagePullPolicy),
            ("docker.defaultImage", defaultImage), ("docker.memory", containerMemory), ("docker.cpus", containerCpus),
            ("log.format", logFormat), ("log.level", logLevel),
            ("policy.allowProcessRuntime", allowProcessRuntime ? "true" : nil),
            ("policy.allowImages", allowedImages.isEmpty ? nil : allowedImages.joined(separator: ",")),
            ("policy.allowRoot", allowRoot ? "true" : nil), ("policy.runAs", runAs),
        ]
        return Dictionary(uniqueKeysWithValues: given.compactMap { key, value in value.map { (key, "\($0)") } })
    }

    func run() async throws {
        if configKeys {
            print(SettingsRendering.markdownTable(AgentSettings.keys), terminator: "")
            return
        }
        let environment = ProcessInfo.processInfo.environment
        let file = config ?? environment["TOUCHSTONE_AGENT_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        let settings: ResolvedSettings
        do {
            settings = try await SettingsResolver.resolve(
                AgentSettings.keys, commandLine: commandLineSettings, environment: environment, file: file,
                fileRequired: file != nil, enforceRequired: !showConfig)
        } catch {
            throw AgentStartError(description: error.description)
        }
        if showConfig {
            print(SettingsRendering.table(settings), terminator: "")
            return
        }
        guard let server = settings.text("server"), let serverID = ServerID(rawValue: server) else {
            throw AgentStartError(description: "server = \"\(settings.text("server") ?? "")\" is not allowed: server takes \(ServerID.shape)")
        }
        settings.bootstrapLogging()
        let logger = Logger(label: "touchstone.agent.\(server)")
        var configuration = Self.configuration(settings, serverID: serverID)
        if action == "init" {
            try AgentInit.run(server: serverID, workspace: configuration.workspace)
            return
        }
        // The run policy is the agent's own (a configuration file or its command line): the backend cannot widen it.
        let runAs = settings.text("policy.runAs")
        if let runAs, RunAsUser.resolve(runAs) == nil {
            throw AgentStartError(description: "policy.runAs = \"\(runAs)\" is not allowed: no such user")
        }
        configuration.runtime.runAs = runAs.flatMap(RunAsUser.resolve)
        configuration.policy = RunPolicy(
            allowedImages: (settings.text("policy.allowImages") ?? "").split(separator: ",").map {
                $0.trimmingCharacters(in: .whitespaces)
            }.filter { !$0.isEmpty },
            allowProcessRuntime: settings.flag("policy.allowProcessRuntime") ?? false, runAs: runAs,
            allowRoot: settings.flag("policy.allowRoot") ?? false)
        let channels = configuration.channels
        let queuePath = settings.text("queuePath")
        do {
            try WorkspaceLock.acquire(workspace: configuration.workspace)
        } catch {
            throw AgentStartError(description: error.description)
        }
        let transport: QueueTransport
        do {
            transport = try QueueTransport.fromSettings(
                transport: settings.text("transport"), queuePath: queuePath, region: settings.text("sqs.region"),
                endpoint: settings.text("sqs.endpoint"), environment: settings.environmentWithCredentials(environment))
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
    /// The agent's configuration from resolved settings (every key is checked and has its default by then).
    static func configuration(_ settings: ResolvedSettings, serverID: ServerID) -> AgentConfiguration {
        let defaults = AgentSettings.defaults
        var configuration = AgentConfiguration(
            serverID: serverID, queuePath: settings.text("queuePath") ?? "",
            queuePrefix: settings.text("queuePrefix") ?? defaults.queuePrefix,
            channels: settings.integer("channels") ?? defaults.channels,
            workspace: absolute(settings.text("workspace") ?? "."),
            pollWait: settings.duration("pollWait") ?? defaults.pollWait,
            drainDeadlineSeconds: settings.integer("drainDeadline") ?? defaults.drainDeadlineSeconds,
            useCgroups: settings.flag("cgroups") ?? defaults.useCgroups)
        configuration.nvidiaSMI = settings.text("nvidiaSmi") ?? defaults.nvidiaSMI
        configuration.runtime.kind = settings.text("runtime").flatMap(RuntimeKind.init(rawValue:)) ?? defaults.runtime.kind
        configuration.runtime.dockerSocket = settings.text("docker.socket") ?? defaults.runtime.dockerSocket
        configuration.runtime.pullPolicy =
            settings.text("docker.imagePullPolicy").flatMap(RuntimeOptions.PullPolicy.init(rawValue:))
            ?? defaults.runtime.pullPolicy
        configuration.runtime.defaultImage = settings.text("docker.defaultImage")
        configuration.runtime.memoryBytes = settings.integer("docker.memory").map { Int64($0) << 20 }
        configuration.runtime.nanoCPUs = settings.number("docker.cpus").map { Int64($0 * 1_000_000_000) }
        return configuration
    }

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
