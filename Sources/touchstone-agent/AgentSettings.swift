import Agent
import ArgumentParser
import Domain
import Operations

/// The agent's configuration keys, declared once: each default is read from ``AgentConfiguration``'s or
/// ``RuntimeOptions``' own (docs/configuration.md is generated from this list by `touchstone-agent --config-keys`).
enum AgentSettings {
    /// An agent configuration holding nothing but the defaults (its server and workspace are placeholders).
    static let defaults = AgentConfiguration(serverID: ServerID(rawValue: "defaults")!, queuePath: "", workspace: "")

    static let keys: [SettingKey] = [
        SettingKey(
            "server", option: "server", required: true,
            summary: "This server's name, as attached in the backend (\(ServerID.shape))."),
        SettingKey(
            "workspace", option: "workspace", required: true,
            summary: "The workspace: the agent's journal and every task's directory."),
    ] + SettingKey.transportKeys(
        embeddedMeaning: "the backend's queues.db, same host", queuePrefix: defaults.queuePrefix) + [
        SettingKey(
            "queuePath", option: "queue-path",
            summary: "The embedded queue file shared with the backend (its state dir's queues.db); embedded only."),
        SettingKey(
            "channels", option: "channels", kind: .integer(2...16), default: String(defaults.channels),
            summary: "Queue pairs to poll; must match `server attach --channels`."),
        SettingKey(
            "drainDeadline", option: "drain-deadline", kind: .integer(0...86_400), unit: "seconds",
            default: String(defaults.drainDeadlineSeconds),
            summary: "How long running tasks may finish after SIGTERM before they are stopped."),
        SettingKey(
            "pollWait", option: "poll-wait", kind: .integer(1...20), unit: "seconds",
            default: String(defaults.pollWait.components.seconds),
            summary: "Long-poll wait per receive (SQS allows up to 20)."),
        SettingKey(
            "policy.allowProcessRuntime", kind: .flag, default: "false",
            summary: "Let tasks run as processes (process runtime); without it a process-runtime agent runs nothing "
                + "(--allow-process-runtime on the command line; docs/security.md)."),
        SettingKey(
            "policy.allowImages",
            summary: "Images tasks may run in (docker runtime): exact names or prefixes ending in *, separated by "
                + "commas (--allow-image, repeatable); none: only the default image."),
        SettingKey(
            "policy.allowRoot", kind: .flag, default: "false",
            summary: "Let tasks run as root (--allow-root)."),
        SettingKey(
            "policy.runAs",
            summary: "The user process-runtime tasks run as, a name or uid (--run-as); none: the agent's own user."),
        SettingKey(
            "cgroups", kind: .flag, default: String(defaults.useCgroups),
            summary: "Put each task in a cgroup of its own when the host allows it (false: process-group kill only; "
                + "--no-cgroups on the command line)."),
        SettingKey(
            "nvidiaSmi", option: "nvidia-smi", default: defaults.nvidiaSMI,
            summary: "The nvidia-smi to query for GPUs (a name on PATH or a path)."),
        SettingKey(
            "runtime", option: "runtime", kind: .choice(RuntimeKind.allCases.map(\.rawValue)),
            default: defaults.runtime.kind.rawValue,
            summary: "Where tasks run: process (child processes) or docker (containers; docs/runtimes.md)."),
        SettingKey(
            "docker.socket", option: "docker-socket", default: defaults.runtime.dockerSocket,
            summary: "The Docker engine's unix socket (docker runtime)."),
        SettingKey(
            "docker.imagePullPolicy", option: "image-pull-policy",
            kind: .choice(RuntimeOptions.PullPolicy.allCases.map(\.rawValue)),
            default: defaults.runtime.pullPolicy.rawValue,
            summary: "Pull a task's image when it is not on the host: never or if-missing (docker runtime)."),
        SettingKey(
            "docker.defaultImage", option: "default-image",
            summary: "The image of tasks that name none (docker runtime); without it such tasks fail to start."),
        SettingKey(
            "docker.memory", option: "container-memory", kind: .integer(1...(1 << 30)), unit: "MiB",
            summary: "A memory limit per task container (docker runtime); none by default."),
        SettingKey(
            "docker.cpus", option: "container-cpus", kind: .number(above: 0, atMost: 4096), unit: "CPUs",
            summary: "A CPU limit per task container, e.g. 1.5 (docker runtime); none by default."),
    ] + SettingKey.logKeys(program: "agent")

    /// The `--help` text of a key's option.
    static func help(_ name: String) -> ArgumentHelp { ArgumentHelp(keys.named(name).help) }
}
