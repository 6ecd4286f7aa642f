import Foundation

/// The backend's settings.
public struct BackendConfiguration: Sendable {
    /// This backend's identity, kept as every task's `touchstone.backend` label.
    public var backendID: String
    /// Queue name prefix (`<prefix>-<server>-<n>-req.fifo`).
    public var queuePrefix: String
    /// How often the scheduler looks for queued tasks and new servers, at the latest.
    public var schedulingInterval: Duration
    /// How often each server's control channel asks for task status reports (`listTasks`).
    public var statusInterval: Duration
    /// The delivery deadline: how long a request stays valid for the agent (its `expiresAt`). The backend waits for
    /// the response until that deadline plus the command's execution deadline (``executionSeconds``, or a stop's
    /// grace period plus that).
    public var requestTimeout: Duration
    /// The execution deadline of a command once delivered, in seconds: a start's launch, a listing, a sync.
    public var executionSeconds: Int = 10
    /// How long a heartbeat waits for its answer before it counts as missed.
    public var heartbeatTimeout: Duration
    /// Consecutive missed heartbeats after which a server is unreachable (nothing is dispatched to it).
    public var missedHeartbeatsForUnreachable: Int
    /// How long a server may stay unreachable before its tasks are declared lost and requeued, in seconds.
    public var lostAfter: Duration
    /// Attempts a task gets before an infrastructure failure is final.
    public var maxAttempts: Int
    /// Seconds between SIGTERM and SIGKILL when a drain deadline stops a task.
    public var stopGraceSeconds: Int
    /// How the scheduler chooses among servers that fit.
    public var packing: PackingPolicy
    /// Inputs, artifacts, log mirrors and the transfer limit (docs/files.md).
    public var transfers = TransferSettings()

    public init(
        backendID: String = "touchstone", queuePrefix: String = "touchstone",
        schedulingInterval: Duration = .milliseconds(250), statusInterval: Duration = .seconds(1),
        requestTimeout: Duration = .seconds(60), heartbeatTimeout: Duration = .seconds(5),
        missedHeartbeatsForUnreachable: Int = 3, lostAfter: Duration = .seconds(300), maxAttempts: Int = 3,
        stopGraceSeconds: Int = 10, packing: PackingPolicy = .pack
    ) {
        self.heartbeatTimeout = heartbeatTimeout
        self.missedHeartbeatsForUnreachable = missedHeartbeatsForUnreachable
        self.lostAfter = lostAfter
        self.maxAttempts = maxAttempts
        self.stopGraceSeconds = stopGraceSeconds
        self.packing = packing
        self.backendID = backendID
        self.queuePrefix = queuePrefix
        self.schedulingInterval = schedulingInterval
        self.statusInterval = statusInterval
        self.requestTimeout = requestTimeout
    }
}
