import Domain
import EventStore
import Foundation
import Logging
import Projections
import Transport
import Wire

/// The backend's connection to one server: a control loop on channel 0 (`hello`, then `listTasks` every
/// ``BackendConfiguration/statusInterval``) and one worker per task channel taking dispatches from a shared queue.
struct ServerLink: Sendable {
    let serverID: ServerID
    let clients: [ChannelClient]
    let log: TouchstoneLog
    let configuration: BackendConfiguration
    let logger: Logger
    let work: AsyncStream<Dispatch>
    let workSink: AsyncStream<Dispatch>.Continuation

    /// A start request to carry.
    struct Dispatch: Sendable {
        var start: StartTask
        var requestID: RequestID
    }

    init(serverID: ServerID, clients: [ChannelClient], log: TouchstoneLog, configuration: BackendConfiguration, logger: Logger) {
        self.serverID = serverID
        self.clients = clients
        self.log = log
        self.configuration = configuration
        self.logger = logger
        (work, workSink) = AsyncStream.makeStream(of: Dispatch.self)
    }

    /// Hands a start to the next free task channel.
    func enqueue(_ dispatch: Dispatch) { workSink.yield(dispatch) }

    /// Runs the control loop and the channel workers until cancelled.
    func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await control() }
            let workers = clients.count > 1 ? Array(clients.dropFirst()) : clients
            for client in workers {
                group.addTask { await worker(client) }
            }
            group.addTask {
                // End the workers' shared stream when the link is cancelled.
                await withTaskCancellationHandler {
                    while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
                } onCancel: {
                    workSink.finish()
                }
            }
        }
    }

    private func control() async {
        guard let control = clients.first else { return }
        var greeted = false
        while !Task.isCancelled {
            do {
                if !greeted {
                    let response = try await control.call(.hello)
                    if case .hello(let hello) = response.body {
                        let skew = Int64((response.agentTime.timeIntervalSinceNow) * 1000)
                        try await log.append(
                            .serverHelloReceived(
                                ServerHelloReceived(
                                    serverID: serverID, agentVersion: hello.agentVersion, agentTime: response.agentTime,
                                    clockSkewMilliseconds: skew, runningTasks: hello.tasks.filter { $0.state == .running }.map(\.key),
                                    gpuCount: hello.gpuCount)),
                            metadata: EventMetadata(actor: "agent:\(serverID)", correlationID: response.requestID?.rawValue))
                        try await observe(hello.tasks)
                        greeted = true
                    }
                } else {
                    let response = try await control.call(.listTasks)
                    if case .taskList(let reports) = response.body { try await observe(reports) }
                }
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                logger.warning("control channel call failed", metadata: ["server": "\(serverID)", "error": "\(error)"])
            }
            try? await Task.sleep(for: configuration.statusInterval)
        }
    }

    private func worker(_ client: ChannelClient) async {
        for await dispatch in work {
            do {
                let response = try await client.call(
                    .startTask(dispatch.start), taskID: dispatch.start.taskID, requestID: dispatch.requestID)
                switch response.body {
                case .taskStarted(let report):
                    try await observe([report])
                case .error(let error):
                    try await fail(dispatch.start, reason: "the agent refused the start: \(error)")
                default:
                    logger.warning("unexpected reply to startTask", metadata: ["task.id": "\(dispatch.start.taskID)"])
                }
            } catch is CancellationError {
                return
            } catch {
                logger.warning(
                    "startTask failed", metadata: ["task.id": "\(dispatch.start.taskID)", "error": "\(error)"])
            }
        }
    }

    private func fail(_ start: StartTask, reason: String) async throws {
        try await log.append(
            .taskFinished(
                TaskFinished(
                    taskID: start.taskID, attempt: start.attempt, serverID: serverID, outcome: .failed,
                    failureClass: .infrastructure, reason: reason)),
            metadata: EventMetadata(actor: "backend"))
    }

    /// Appends the transitions that the agent's reports imply, each with the task stream's expected version so that
    /// two channels reporting the same end record it once.
    func observe(_ reports: [TaskStatusReport]) async throws {
        for report in reports {
            guard
                let row = try await log.store.read({ db in
                    try ReadModels.row(TaskBoard.self, key: report.taskID.rawValue, in: db)
                })
            else { continue }
            let events = Reconciler.transitions(for: row, report: report, server: serverID)
            guard !events.isEmpty else { continue }
            let stream = StreamName.task(report.taskID)
            let version = try await log.store.version(of: stream)
            let meta = EventMetadata(actor: "agent:\(serverID)", correlationID: report.labels["touchstone.request"])
            do {
                try await log.append(
                    events.enumerated().map { index, event in
                        TouchstoneLog.Append(event, expectedVersion: .exact(version), metadata: meta)
                    })
            } catch {
                // Another channel recorded a transition meanwhile; the next report reconciles again.
                guard error.code == .wrongExpectedVersion else { throw error }
            }
        }
    }
}
