import Domain
import EventStore
import FileSignals
import Foundation
import Logging
import Projections
import Synchronization
import Wire

/// The transfer work of one server link, shared between its enqueue side and its transfer loop.
final class TransferState: Sendable {
    private struct State {
        var jobs: [(StartTask, RequestID)] = []
        /// Attempts whose inputs wait for or are in a put: their start is not sent yet.
        var staging: Set<TaskAttempt> = []
        /// When each attempt's inputs were done: its start request was sent no earlier.
        var staged: [TaskAttempt: ContinuousClock.Instant] = [:]
        /// Ended attempts whose outputs were looked at in this life of the backend.
        var outputsChecked: Set<TaskAttempt> = []
        /// Ended attempts whose logs are mirrored to their end.
        var logsDone: Set<TaskAttempt> = []
        /// Attempts seen ending whose logs and outputs are still to be fetched.
        var ended: Set<TaskID> = []
        /// Ended attempts whose logs were not at their end: fetched again with the next mirroring.
        var later: Set<TaskID> = []
        /// The final sizes of ended attempts' logs, from the agent's report.
        var logBytes: [TaskAttempt: [String: Int64]] = [:]
    }

    private let state = Mutex(State())
    /// Wakes the transfer loop: a start with inputs, or an attempt that ended.
    let signal = ChangeSignal()

    func add(_ start: StartTask, _ requestID: RequestID) {
        state.withLock {
            $0.jobs.append((start, requestID))
            $0.staging.insert(TaskAttempt(taskID: start.taskID, attempt: start.attempt))
        }
        signal.bump()
    }

    /// Notes tasks whose attempt ended on this server, for the transfer loop to fetch their logs and outputs.
    func noteEnded(_ tasks: some Sequence<TaskID>) {
        var any = false
        state.withLock { state in
            for task in tasks { any = state.ended.insert(task).inserted || any }
        }
        if any { signal.bump() }
    }

    /// The ended tasks noted since the last call, and those to retry later when `includingLater`.
    func takeEnded(includingLater: Bool) -> Set<TaskID> {
        state.withLock { state in
            var taken = state.ended
            state.ended.removeAll()
            if includingLater {
                taken.formUnion(state.later)
                state.later.removeAll()
            }
            return taken
        }
    }

    /// Notes the final sizes of an ended attempt's logs (from its report).
    func noteLogBytes(_ attempt: TaskAttempt, _ bytes: [String: Int64]) { state.withLock { $0.logBytes[attempt] = bytes } }

    /// The final sizes of an ended attempt's logs, once (forgotten when read).
    func takeLogBytes(_ attempt: TaskAttempt) -> [String: Int64]? {
        state.withLock { $0.logBytes.removeValue(forKey: attempt) }
    }

    /// Notes an ended task whose logs are to be fetched again later.
    func retryLater(_ task: TaskID) { _ = state.withLock { $0.later.insert(task) } }

    func next() -> (StartTask, RequestID)? {
        state.withLock { $0.jobs.isEmpty ? nil : $0.jobs.removeFirst() }
    }

    func finishStaging(_ attempt: TaskAttempt) {
        state.withLock {
            $0.staging.remove(attempt)
            $0.staged[attempt] = .now
        }
    }

    /// Whether an attempt's inputs are being put (its start is deliberately not sent yet), or were put less than
    /// `seconds` ago (its start request may still be in flight: its expiry counts from then, not from the booking).
    func isStaging(_ attempt: TaskAttempt, within seconds: Double) -> Bool {
        state.withLock {
            if $0.staging.contains(attempt) { return true }
            guard let done = $0.staged[attempt] else { return false }
            if ContinuousClock.now - done < .milliseconds(Int64(seconds * 1000)) { return true }
            $0.staged[attempt] = nil
            return false
        }
    }

    func markOutputsChecked(_ attempt: TaskAttempt) -> Bool { state.withLock { $0.outputsChecked.insert(attempt).inserted } }
    func logsDone(_ attempt: TaskAttempt) -> Bool { state.withLock { $0.logsDone.contains(attempt) } }
    func markLogsDone(_ attempt: TaskAttempt) { _ = state.withLock { $0.logsDone.insert(attempt) } }
}

extension ServerLink {
    /// The channel transfers use: the highest when the server has 3 or more (channel 0 is control, the ones between
    /// carry starts and stops, so a large transfer never delays a stop or a heartbeat); with 2 channels, channel 1
    /// (shared with starts and stops); with 1, channel 0.
    static func transferChannel(of clients: [ChannelClient]) -> ChannelClient? {
        clients.count >= 3 ? clients.last : clients.count == 2 ? clients[1] : clients.first
    }

    /// The channels that carry starts and stops: all but control and the transfer channel (when there are 3 or more).
    static func taskChannels(of clients: [ChannelClient]) -> [ChannelClient] {
        if clients.count >= 3 { return Array(clients[1..<(clients.count - 1)]) }
        return clients.count > 1 ? Array(clients.dropFirst()) : clients
    }

    var transferClient: TransferClient? {
        guard let directory = configuration.transfers.stateDirectory, let channel = Self.transferChannel(of: clients)
        else { return nil }
        return TransferClient(
            serverID: serverID, client: channel, log: log, settings: configuration.transfers,
            store: ArtifactStore(stateDirectory: directory), logger: logger)
    }

    /// Routes a start: one whose spec has inputs waits in the transfer loop until they are put.
    ///
    /// - Returns: `true` when the transfer loop took it.
    func routeThroughTransfers(_ item: Work) -> Bool {
        guard case .start(let start, let requestID) = item, !start.spec.inputs.isEmpty else { return false }
        transferState.add(start, requestID)
        return true
    }

    /// The transfer loop: puts the inputs of starts (then hands them to the task channels), mirrors the logs of
    /// running tasks and collects the outputs of ended ones, one request at a time on the transfer channel.
    func transferLoop() async {
        // After a (re)start, tasks that ended in the last day are looked at once: their logs and outputs may not
        // have been fetched yet. From then on only the attempts this link saw end, and the running ones.
        var recent: Date? = Date().addingTimeInterval(-86_400)
        var nextMirror = ContinuousClock.now
        while !Task.isCancelled {
            let generation = transferState.signal.generation
            if let job = transferState.next() {
                await stageInputs(job.0, job.1)
                continue
            }
            var running = false
            do {
                let mirror = ContinuousClock.now >= nextMirror
                running = try await mirrorAndCollect(endedAfter: recent, mirrorRunning: mirror)
                recent = nil
                if mirror { nextMirror = ContinuousClock.now + configuration.transfers.pollInterval }
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                logger.warning("transfer pass failed", metadata: ["server": "\(serverID)", "error": "\(error)"])
                try? await Task.sleep(for: configuration.transfers.retryPause)
                // Not known to be idle: the pass is tried again at the next mirror time, not only at the next end.
                running = true
                nextMirror = min(nextMirror, ContinuousClock.now)
            }
            // Woken by a start with inputs or an end; while tasks run, also when their logs are next mirrored.
            let wait = running ? max(.milliseconds(1), nextMirror - ContinuousClock.now) : .seconds(3600)
            await transferState.signal.wait(after: generation, timeout: wait)
        }
    }

    private func stageInputs(_ start: StartTask, _ requestID: RequestID) async {
        let attempt = TaskAttempt(taskID: start.taskID, attempt: start.attempt)
        defer { transferState.finishStaging(attempt) }
        do {
            guard try await stillWanted(start) != nil else { return }
            guard let transfers = transferClient else {
                throw TransferError(.unavailable, "the backend has no state directory for input files")
            }
            for (number, input) in start.spec.inputs.enumerated() {
                let local = transfers.store.inputPath(sha256: input.sha256)
                try await transfers.put(
                    localPath: local, to: input.path, attempt: attempt,
                    transferID: "put-\(start.taskID)-\(start.attempt)-\(number)", executable: input.executable)
            }
            work.push(.start(start, requestID))
        } catch is CancellationError {
            return
        } catch {
            if Task.isCancelled { return }
            logger.warning("inputs could not be put", metadata: ["task.id": "\(start.taskID)", "error": "\(error)"])
            let report = TaskStatusReport(
                taskID: start.taskID, attempt: start.attempt, state: .failedToStart,
                reason: "the inputs could not be put: \(error)")
            try? await observe([report], listedAfter: nil)
        }
    }

    /// Mirrors the logs of running attempts (when `mirrorRunning`) and fetches the logs and outputs of ended ones:
    /// those noted by ``TransferState/noteEnded(_:)``, plus, after a restart, those that ended after `endedAfter`.
    ///
    /// - Returns: Whether attempts run on this server (their logs are mirrored again later).
    private func mirrorAndCollect(endedAfter: Date?, mirrorRunning: Bool) async throws -> Bool {
        guard let transfers = transferClient else { return false }
        var rows: [TaskID: TaskRow] = [:]
        if let server = try await log.serverRow(serverID) {
            for row in try await log.liveTasks(on: server.serverID) { rows[row.taskID] = row }
        }
        let running = rows.values.contains { $0.status == .running }
        if !mirrorRunning { rows = [:] }
        var pending = false
        for (id, row) in try await log.taskRows(transferState.takeEnded(includingLater: mirrorRunning)) { rows[id] = row }
        if let endedAfter {
            for row in try await log.taskRows(endedOn: serverID, after: endedAfter) { rows[row.taskID] = row }
        }
        for row in rows.values.sorted(by: { $0.taskID.rawValue < $1.taskID.rawValue }) where row.serverID == serverID {
            let attempt = TaskAttempt(taskID: row.taskID, attempt: row.attempt)
            switch row.status {
            case .running:
                _ = try await mirrorLogs(attempt, transfers)
            case .succeeded, .failed, .cancelled:
                guard row.startedAt != nil else { continue }
                if !transferState.logsDone(attempt) {
                    let marker = transfers.store.logCompleteMarker(attempt)
                    var done = FileManager.default.fileExists(atPath: marker)
                    if !done, let bytes = transferState.takeLogBytes(attempt) {
                        // The agent reported the final sizes: logs already mirrored whole (or empty) need no request.
                        done = Self.mirrorsAreWhole(attempt, bytes, transfers.store)
                    }
                    if !done { done = try await mirrorLogs(attempt, transfers) }
                    if done {
                        _ = FileManager.default.createFile(atPath: marker, contents: nil)
                        transferState.markLogsDone(attempt)
                    } else {
                        // Not at their end yet: looked at again with the next mirroring of running tasks.
                        transferState.retryLater(row.taskID)
                        pending = true
                    }
                }
                if transferState.markOutputsChecked(attempt) {
                    try await collectOutputs(attempt, transfers)
                }
            default:
                break
            }
        }
        return running || pending
    }

    /// Whether both mirrors of an ended attempt already hold as many bytes as its logs had at the end (creating empty
    /// mirrors for empty logs).
    static func mirrorsAreWhole(_ attempt: TaskAttempt, _ bytes: [String: Int64], _ store: ArtifactStore) -> Bool {
        let manager = FileManager.default
        for stream in LogStream.allCases {
            guard let expected = bytes[stream.rawValue] else { return false }
            let path = store.logPath(attempt, stream)
            let size = (try? manager.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value
            if size == nil, expected == 0 {
                try? manager.createDirectory(atPath: store.logDirectory(attempt), withIntermediateDirectories: true)
                guard manager.createFile(atPath: path, contents: nil) else { return false }
                continue
            }
            guard size == expected else { return false }
        }
        return true
    }

    /// Appends what is new in both logs of an attempt to their mirrors.
    ///
    /// - Returns: Whether both mirrors reached the end of logs that no longer grow.
    private func mirrorLogs(_ attempt: TaskAttempt, _ transfers: TransferClient) async throws -> Bool {
        var finished = true
        try FileManager.default.createDirectory(
            atPath: transfers.store.logDirectory(attempt), withIntermediateDirectories: true)
        for stream in LogStream.allCases {
            let path = transfers.store.logPath(attempt, stream)
            if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
            guard let handle = FileHandle(forWritingAtPath: path) else { return false }
            defer { try? handle.close() }
            var offset = Int64(try handle.seekToEnd())
            var caughtUp = false
            // A bounded number of reads per pass: a chatty task cannot hold the transfer channel.
            for _ in 0..<16 {
                let data: LogData
                do {
                    data = try await transfers.readLog(attempt, stream, offset: offset)
                } catch {
                    guard let refused = error as? TransferError, refused.code == .notFound else { throw error }
                    caughtUp = true
                    break
                }
                if !data.data.isEmpty {
                    try handle.write(contentsOf: data.data)
                    offset += Int64(data.data.count)
                }
                if offset >= data.size {
                    caughtUp = !data.running
                    break
                }
            }
            finished = finished && caughtUp
        }
        return finished
    }

    private func collectOutputs(_ attempt: TaskAttempt, _ transfers: TransferClient) async throws {
        guard let first = try await log.store.read(stream: StreamName.task(attempt.taskID)).first,
            case .taskSubmitted(let submitted) = try ReadModels.decode(first).event, !submitted.spec.outputs.isEmpty
        else { return }
        var settled = Set<String>()
        for stored in try await log.store.read(stream: StreamName.transfer(attempt.taskID)) {
            switch try ReadModels.decode(stored).event {
            case .transfer(.completed(let e)) where e.direction == .get && e.attempt == attempt.attempt:
                settled.insert(e.path)
            case .transfer(.failed(let e)) where e.direction == .get && e.attempt == attempt.attempt:
                settled.insert(e.path)
            case .transfer(.rejected(let e)) where e.direction == .get && e.attempt == attempt.attempt:
                settled.insert(e.path)
            default:
                break
            }
        }
        for path in submitted.spec.outputs where !settled.contains(path) {
            do {
                try await transfers.get(path, attempt: attempt)
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                // Recorded as transfer.failed or transfer.rejected.
                logger.warning("output not collected", metadata: ["task.id": "\(attempt.taskID)", "path": "\(path)", "error": "\(error)"])
            }
        }
    }
}
