@preconcurrency import Crypto
import Domain
import Foundation

/// The agent's settings.
public struct AgentConfiguration: Sendable {
    /// The server this agent serves; requests naming another server are refused.
    public var serverID: ServerID
    /// The embedded queue file shared with the backend (one host).
    public var queuePath: String
    /// Queue name prefix: queues are `<prefix>-<server>-<n>-req.fifo` / `-resp.fifo`.
    public var queuePrefix: String
    /// Number of channels to poll (channel 0 is control); must match the server's attach.
    public var channels: Int
    /// The agent's workspace: its journal and every task's working directory live here.
    public var workspace: String
    /// Long-poll wait per receive (SQS allows 0–20 seconds).
    public var pollWait: Duration
    /// On graceful shutdown, how long running tasks may finish before they are stopped, in seconds.
    public var drainDeadlineSeconds: Int
    /// Whether to put each task in a cgroup of its own when the host allows it.
    public var useCgroups: Bool
    /// The `nvidia-smi` to query for GPUs (name on `PATH`, or a path); absent means no GPUs.
    public var nvidiaSMI: String = "nvidia-smi"
    /// Where tasks run: processes or Docker containers (``RuntimeOptions``).
    public var runtime = RuntimeOptions()
    /// What this agent agrees to run (``RunPolicy``); the default runs nothing.
    public var policy = RunPolicy()
    /// The backend keys whose signatures the agent accepts (`--backend-key`); none: every request is refused.
    public var backendKeys = BackendKeySource()
    /// The agent's own key, signing every response (`agent.key` in the workspace). A fresh key nobody pinned until
    /// set: the backend then refuses the agent's responses.
    public var signingKey = Curve25519.Signing.PrivateKey()
    /// The agent's X25519 key opening `task submit --secret-env` values (`agent.seal.key`); `nil`: tasks with
    /// secrets fail to start.
    public var sealingKey: Curve25519.KeyAgreement.PrivateKey?

    public init(
        serverID: ServerID, queuePath: String, queuePrefix: String = "touchstone", channels: Int = 3,
        workspace: String, pollWait: Duration = .seconds(20), drainDeadlineSeconds: Int = 600, useCgroups: Bool = true
    ) {
        self.serverID = serverID
        self.queuePath = queuePath
        self.queuePrefix = queuePrefix
        self.channels = channels
        self.workspace = workspace
        self.pollWait = pollWait
        self.drainDeadlineSeconds = drainDeadlineSeconds
        self.useCgroups = useCgroups
    }

    /// The cgroup directory of this agent's tasks: the server's name and a hash of the workspace path, so that two
    /// agents on one host (two test runs, two backends' agents) never share a task's cgroup, whose kill would reach
    /// the other's process.
    public var cgroupScope: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a, 64 bits
        for byte in workspace.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return "\(serverID)-" + String(hash, radix: 16)
    }

    /// The agent's private key file (mode 0600); its public key is next to it, `agent.key.pub`.
    public var keyPath: String { workspace + "/agent.key" }
    /// The agent's sealing key file (mode 0600), next to ``keyPath``.
    public var sealingKeyPath: String { workspace + "/agent.seal.key" }
    /// The agent's journal file.
    public var journalPath: String { workspace + "/journal.db" }
    /// The working directory of one attempt.
    public func taskDirectory(_ attempt: TaskAttempt) -> String {
        "\(workspace)/tasks/\(attempt.taskID)/\(attempt.attempt)"
    }
}

/// The agent's version, reported in `hello`.
public let agentVersion = TouchstoneVersion.current
