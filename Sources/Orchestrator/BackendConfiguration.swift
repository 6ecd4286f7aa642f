import Domain
import Foundation

/// The backend's settings.
public struct BackendConfiguration: Sendable {
    /// This backend's identity, kept as every task's `touchstone.backend` label.
    public var backendID: String
    /// Queue name prefix (`<prefix>-<server>-<n>-req.fifo`).
    public var queuePrefix: String
    /// How long an idle server's blocking heartbeat query is held before the agent answers "no change" (rounded up
    /// to whole seconds, at least 1): the longest an idle server goes without contact. Task starts and ends are
    /// answered at once, so this is not a polling interval. Default 30 s: 2 log events a wait, so an idle server adds
    /// 4 events a minute (issue 10 asks ≤ 6), and about 6 SQS calls a wait.
    public var statusInterval: Duration
    /// The delivery deadline: how long a request stays valid for the agent (its `expiresAt`). The backend waits for
    /// the response until that deadline plus the command's execution deadline (``executionSeconds``, or a stop's
    /// grace period plus that).
    public var requestTimeout: Duration
    /// The execution deadline of a command once delivered, in seconds: a start's launch, a listing, a sync.
    public var executionSeconds: Int = 10
    /// The grace for an answer beyond a request's own deadline (a query's wait included), and the wait after each
    /// resend: a slow agent (its CPUs saturated by data loaders) answers late, which is not a desync.
    public var heartbeatTimeout: Duration
    /// Unanswered sends of one request (the first and its resends with the same request ID) after which the agent
    /// counts as silent: the channel is drained and the server marked unreachable (nothing is dispatched to it).
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
    /// The key requests are signed with and the agent keys responses are checked against (docs/security.md);
    /// `nil`: no request can be sent (`touchstone serve` loads them from its state directory).
    public var keys: BackendKeys?
    /// The largest agent clock skew tolerated (`serve --max-clock-skew`, default 30 s): past it a server is
    /// `unhealthy: clock skew 6m` and gets no new tasks (issue 17 part 3).
    public var maxClockSkew: Duration = .seconds(30)
    /// The backend's clocks: the wall clock for what is recorded and sent, the monotonic one for every deadline and
    /// liveness rule. Tests inject one whose wall clock jumps.
    public var clock: any BackendClock = SystemClock()

    public init(
        backendID: String = "touchstone", queuePrefix: String = "touchstone",
        statusInterval: Duration = .seconds(30),
        requestTimeout: Duration = .seconds(60), heartbeatTimeout: Duration = .seconds(10),
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
        self.statusInterval = statusInterval
        self.requestTimeout = requestTimeout
    }
}

/// The backend's two clocks (issue 17 part 3). Deadlines and liveness are measured on the monotonic clock, so a jump
/// of the wall clock (an NTP step, an operator's `date -s`) never withdraws, expires or loses anything; the wall clock
/// is only recorded, sent to agents (corrected by their measured skew) and shown.
public protocol BackendClock: Sendable {
    /// The wall clock.
    func now() -> Date
    /// The monotonic clock, for deadlines.
    func instant() -> ContinuousClock.Instant
}

/// The system's clocks; the wall clock honours the `TOUCHSTONE_FAULT_CLOCK_OFFSET_FILE` test fault (``FaultClock``).
public struct SystemClock: BackendClock {
    public init() {}
    public func now() -> Date { FaultClock.now() }
    public func instant() -> ContinuousClock.Instant { .now }
}
