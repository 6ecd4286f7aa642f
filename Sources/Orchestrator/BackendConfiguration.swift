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
    /// How long a request stays valid for the agent (its `expiresAt`), and how long the backend waits for the
    /// response before giving up on it.
    public var requestTimeout: Duration

    public init(
        backendID: String = "touchstone", queuePrefix: String = "touchstone",
        schedulingInterval: Duration = .milliseconds(250), statusInterval: Duration = .seconds(1),
        requestTimeout: Duration = .seconds(60)
    ) {
        self.backendID = backendID
        self.queuePrefix = queuePrefix
        self.schedulingInterval = schedulingInterval
        self.statusInterval = statusInterval
        self.requestTimeout = requestTimeout
    }
}
