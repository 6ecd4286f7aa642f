import Domain
import EventStore
import Foundation
import Logging
import Projections
import Transport
import Wire

/// The backend's file-transfer settings (docs/files.md).
public struct TransferSettings: Sendable {
    /// The backend's state directory, holding `inputs/`, `artifacts/` and `logs/` (see ``ArtifactStore``); `nil`
    /// disables inputs, artifact collection and log mirroring (a task with inputs then fails to start).
    public var stateDirectory: String?
    /// The largest file put or got, in bytes, checked before the first chunk is sent. Default 10 GiB.
    public var maxFileBytes: Int64
    /// How long one transfer request (a chunk, a status query, a log read) waits for its answer.
    public var requestTimeout: Duration
    /// Runs of one transfer after a transient failure (timeout, queue error) before it is given up; each run first asks
    /// the receiver what it holds and resumes from there.
    public var attempts: Int
    /// The pause between runs.
    public var retryPause: Duration
    /// How often the logs of running tasks are mirrored and ended tasks' outputs collected.
    public var pollInterval: Duration

    public init(
        stateDirectory: String? = nil, maxFileBytes: Int64 = 10 << 30, requestTimeout: Duration = .seconds(60),
        attempts: Int = 20, retryPause: Duration = .seconds(1), pollInterval: Duration = .seconds(1)
    ) {
        self.stateDirectory = stateDirectory
        self.maxFileBytes = maxFileBytes
        self.requestTimeout = requestTimeout
        self.attempts = attempts
        self.retryPause = retryPause
        self.pollInterval = pollInterval
    }
}

/// Where the backend keeps files, under its state directory:
///
/// - `inputs/<sha256>`: input files copied in by `task submit --input`, named by content;
/// - `artifacts/<task>/<attempt>/<path>`: outputs got from agents; `artifacts/.partial/`: gets in progress;
/// - `logs/<task>/<attempt>/stdout.log|stderr.log`: mirrors of the attempts' logs (`.complete` once final).
public struct ArtifactStore: Sendable {
    public let root: String

    public init(stateDirectory: String) { root = stateDirectory }

    public func inputPath(sha256: String) -> String { "\(root)/inputs/\(sha256)" }
    public func artifactDirectory(_ attempt: TaskAttempt) -> String {
        "\(root)/artifacts/\(attempt.taskID)/\(attempt.attempt)"
    }
    public var partialDirectory: String { "\(root)/artifacts/.partial" }
    public func logDirectory(_ attempt: TaskAttempt) -> String { "\(root)/logs/\(attempt.taskID)/\(attempt.attempt)" }
    public func logPath(_ attempt: TaskAttempt, _ stream: LogStream) -> String {
        logDirectory(attempt) + "/" + stream.fileName
    }
    /// Present once both logs of an ended attempt are mirrored to their end.
    public func logCompleteMarker(_ attempt: TaskAttempt) -> String { logDirectory(attempt) + "/.complete" }

    /// Copies a local file into `inputs/<sha256>`, hashing it on the way (streamed, bounded memory).
    ///
    /// - Returns: The content's SHA-256 and size.
    /// - Throws: ``TransferError`` `.notFound` when the file cannot be read; a file-system error.
    public func importInput(_ localPath: String) throws -> (sha256: String, size: Int64) {
        try FileManager.default.createDirectory(atPath: root + "/inputs", withIntermediateDirectories: true)
        let temporary = "\(root)/inputs/.import-\(UInt64.random(in: 0...UInt64.max))"
        guard let source = FileHandle(forReadingAtPath: localPath) else {
            throw TransferError(.notFound, "cannot read input file \(localPath)")
        }
        defer { try? source.close() }
        _ = FileManager.default.createFile(atPath: temporary, contents: nil)
        guard let target = FileHandle(forWritingAtPath: temporary) else {
            throw TransferError(.notFound, "cannot write \(temporary)")
        }
        var size: Int64 = 0
        do {
            defer { try? target.close() }
            while let data = try source.read(upToCount: FileChunking.streamBufferSize), !data.isEmpty {
                try target.write(contentsOf: data)
                size += Int64(data.count)
            }
            try target.synchronize()
        }
        let (sha, hashed) = try FileDigest.sha256(ofFileAt: temporary)
        guard hashed == size else { throw TransferError(.checksumMismatch, "input \(localPath) changed while copied") }
        let final = inputPath(sha256: sha)
        if FileManager.default.fileExists(atPath: final) {
            try? FileManager.default.removeItem(atPath: temporary)
        } else {
            try FileManager.default.moveItem(atPath: temporary, toPath: final)
        }
        return (sha, size)
    }

    /// The collected outputs of a task, from its `transfer/<task>` stream: the latest completed get per path.
    ///
    /// - Throws: ``EventStoreError`` when the log cannot be read.
    public static func artifacts(of task: TaskID, in log: TouchstoneLog) async throws -> [TransferCompleted] {
        var latest: [String: TransferCompleted] = [:]
        for stored in try await log.store.read(stream: StreamName.transfer(task)) {
            if case .transfer(.completed(let done)) = try ReadModels.decode(stored).event, done.direction == .get {
                if let existing = latest[done.path], existing.attempt > done.attempt { continue }
                latest[done.path] = done
            }
        }
        return latest.values.sorted { $0.path < $1.path }
    }

    /// A declared output that was not collected: the task did not write it, or it could not be got.
    public struct MissingOutput: Sendable, Equatable, Encodable {
        /// Relative to the attempt's working directory.
        public var path: String
        public var attempt: Int
        /// `code: reason` of the last failed or refused get (`notFound: …` when the task did not write it).
        public var reason: String
    }

    /// The outputs of a task whose latest get failed or was refused, with no completed get of the same or a later
    /// attempt, from its `transfer/<task>` stream, by path.
    ///
    /// - Throws: ``EventStoreError`` when the log cannot be read.
    public static func missingOutputs(of task: TaskID, in log: TouchstoneLog) async throws -> [MissingOutput] {
        var completed: [String: Int] = [:]
        var failed: [String: MissingOutput] = [:]
        for stored in try await log.store.read(stream: StreamName.transfer(task)) {
            switch try ReadModels.decode(stored).event {
            case .transfer(.completed(let done)) where done.direction == .get:
                completed[done.path] = max(completed[done.path] ?? 0, done.attempt)
            case .transfer(.failed(let e)) where e.direction == .get:
                failed[e.path] = MissingOutput(path: e.path, attempt: e.attempt, reason: "\(e.code): \(e.reason)")
            case .transfer(.rejected(let e)) where e.direction == .get:
                failed[e.path] = MissingOutput(path: e.path, attempt: e.attempt, reason: "\(e.code): \(e.reason)")
            default:
                break
            }
        }
        return failed.values.filter { (completed[$0.path] ?? 0) < $0.attempt }.sorted { $0.path < $1.path }
    }
}

/// Puts, gets and log reads with one server over its transfer channel, each recorded in the log as
/// `transfer.started` / `.completed` / `.failed` / `.rejected` (never per chunk: the chunks are the channel's
/// `channel.request.sent` / `.response.received` events).
struct TransferClient: Sendable {
    let serverID: ServerID
    let client: ChannelClient
    let log: TouchstoneLog
    let settings: TransferSettings
    let store: ArtifactStore
    let logger: Logger

    private var meta: EventMetadata { EventMetadata(actor: "backend") }

    /// Puts a local file into an attempt's working directory, resuming from what the agent holds.
    ///
    /// - Throws: ``TransferError``: `.pathEscapes` / `.tooLarge` (recorded as `transfer.rejected`), or the failure
    ///   recorded as `transfer.failed`.
    @discardableResult
    func put(
        localPath: String, to remote: String, attempt: TaskAttempt, transferID: String, executable: Bool = false
    ) async throws -> TransferCompleted {
        guard RelativePath.isConfined(remote) else {
            try await reject(attempt, .put, remote, .pathEscapes, "path \(remote.debugDescription) must be relative and stay inside the task's working directory")
        }
        let size = try Self.size(of: localPath)
        guard size <= settings.maxFileBytes else {
            try await reject(attempt, .put, remote, .tooLarge, "\(remote) is \(size) bytes, over the transfer limit of \(settings.maxFileBytes) bytes")
        }
        let (sha, _) = try FileDigest.sha256(ofFileAt: localPath)
        let identity = FileIdentity(size: size, sha256: sha)
        return try await retrying(transferID, attempt, .put, remote) { sent in
            try await putRun(localPath, remote, attempt, transferID, executable, identity, &sent)
        }
    }

    private func putRun(
        _ localPath: String, _ remote: String, _ attempt: TaskAttempt, _ transferID: String, _ executable: Bool,
        _ identity: FileIdentity, _ sent: inout Int
    ) async throws -> TransferCompleted {
        let query = TransferStatusQuery(
            transferID: transferID, taskID: attempt.taskID, attempt: attempt.attempt, path: remote, file: identity)
        var progress = try progressOf(await call(.transferStatus(query), attempt))
        var held = ChunkRange.indices(progress.received)
        try await record(
            .started(
                TransferStarted(
                    transferID: transferID, taskID: attempt.taskID, attempt: attempt.attempt, serverID: serverID,
                    direction: .put, path: remote, size: identity.size, sha256: identity.sha256,
                    chunkCount: identity.chunkCount, chunksHeld: progress.complete ? identity.chunkCount : held.count)))
        var passes = 0
        while !progress.complete {
            passes += 1
            guard passes <= 3 else {
                throw TransferError(.badChunk, "the agent did not confirm every chunk after 3 passes")
            }
            for index in 0..<identity.chunkCount where !held.contains(index) {
                try Task.checkCancellation()
                let (data, fileSize) = try ChunkReader.read(path: localPath, index: index, chunkSize: identity.chunkSize)
                guard fileSize == identity.size else {
                    throw TransferError(.checksumMismatch, "\(localPath) changed while it was being sent")
                }
                let chunk = PutChunk(
                    transferID: transferID, taskID: attempt.taskID, attempt: attempt.attempt, path: remote,
                    executable: executable, file: identity, index: index, data: data)
                progress = try progressOf(await call(.putChunk(chunk), attempt))
                sent += 1
                if progress.complete { break }
            }
            if !progress.complete {
                progress = try progressOf(await call(.transferStatus(query), attempt))
                held = ChunkRange.indices(progress.received)
            }
        }
        let completed = TransferCompleted(
            transferID: transferID, taskID: attempt.taskID, attempt: attempt.attempt, serverID: serverID,
            direction: .put, path: remote, size: identity.size, sha256: identity.sha256,
            chunkCount: identity.chunkCount, chunksSent: sent)
        try await record(.completed(completed))
        return completed
    }

    /// Gets a file of an attempt's working directory into the artifact store, resuming from the partial file kept
    /// there, and verifies its SHA-256.
    ///
    /// - Throws: As ``put(localPath:to:attempt:transferID:executable:)``.
    @discardableResult
    func get(_ remote: String, attempt: TaskAttempt) async throws -> TransferCompleted {
        guard RelativePath.isConfined(remote) else {
            try await reject(attempt, .get, remote, .pathEscapes, "path \(remote.debugDescription) must be relative and stay inside the task's working directory")
        }
        let transferID = "get-\(attempt.taskID)-\(attempt.attempt)-\(remote)"
        return try await retrying(transferID, attempt, .get, remote) { sent in
            try await getRun(remote, attempt, transferID, &sent)
        }
    }

    private func getRun(_ remote: String, _ attempt: TaskAttempt, _ transferID: String, _ sent: inout Int)
        async throws -> TransferCompleted
    {
        let reference = TaskFileReference(taskID: attempt.taskID, attempt: attempt.attempt, path: remote)
        let info: FileInfo
        switch try await call(.statFile(reference), attempt).body {
        case .fileInfo(let answer): info = answer
        case let other: throw Self.unexpected(other)
        }
        let identity = info.file
        guard identity.size <= settings.maxFileBytes else {
            try await reject(attempt, .get, remote, .tooLarge, "\(remote) is \(identity.size) bytes, over the transfer limit of \(settings.maxFileBytes) bytes")
        }
        let destination = try PathConfinement.resolve(
            remote, in: store.artifactDirectory(attempt), creatingDirectories: true)
        let partial = try PartialFile(staging: store.partialDirectory, transferID: transferID, identity: identity)
        if partial.isComplete && !FileManager.default.fileExists(atPath: destination) {
            // Completed once, but the artifact is gone: fetch it again.
            partial.forgetCompletion()
        }
        let held = partial.isComplete ? Set(0..<identity.chunkCount) : partial.received()
        try await record(
            .started(
                TransferStarted(
                    transferID: transferID, taskID: attempt.taskID, attempt: attempt.attempt, serverID: serverID,
                    direction: .get, path: remote, size: identity.size, sha256: identity.sha256,
                    chunkCount: identity.chunkCount, chunksHeld: held.count)))
        for index in 0..<identity.chunkCount where !held.contains(index) {
            try Task.checkCancellation()
            let read = ReadChunk(file: reference, index: index, chunkSize: identity.chunkSize)
            let chunk: FileChunk
            switch try await call(.readChunk(read), attempt).body {
            case .fileChunk(let answer): chunk = answer
            case let other: throw Self.unexpected(other)
            }
            guard chunk.size == identity.size, chunk.index == index else {
                partial.discard()
                throw TransferError(.checksumMismatch, "\(remote) changed on the agent while it was being read")
            }
            try partial.write(index: index, data: chunk.data)
            sent += 1
        }
        guard try partial.finishIfComplete(destination: destination) else {
            throw TransferError(.badChunk, "\(remote): chunks are missing after a full pass")
        }
        let completed = TransferCompleted(
            transferID: transferID, taskID: attempt.taskID, attempt: attempt.attempt, serverID: serverID,
            direction: .get, path: remote, size: identity.size, sha256: identity.sha256,
            chunkCount: identity.chunkCount, chunksSent: sent)
        try await record(.completed(completed))
        return completed
    }

    /// Reads log bytes of an attempt from `offset`.
    func readLog(_ attempt: TaskAttempt, _ stream: LogStream, offset: Int64) async throws -> LogData {
        let response = try await call(
            .readLog(ReadLog(taskID: attempt.taskID, attempt: attempt.attempt, stream: stream, offset: offset)), attempt)
        switch response.body {
        case .logData(let data): return data
        case let other: throw Self.unexpected(other)
        }
    }

    // MARK: Helpers

    private func call(_ command: Command, _ attempt: TaskAttempt) async throws -> ResponseEnvelope {
        try await client.call(command, taskID: attempt.taskID, delivery: settings.requestTimeout)
    }

    private func progressOf(_ response: ResponseEnvelope) throws -> TransferProgress {
        if case .transferProgress(let progress) = response.body { return progress }
        throw Self.unexpected(response.body)
    }

    /// An error answer as a ``TransferError``; `expired` is transient (retried) and becomes a timeout.
    static func unexpected(_ body: ResponseBody) -> any Error {
        if case .error(let error) = body {
            if error.code == .expired { return BackendError(.timeout, error.message) }
            return TransferError(error.code, error.message)
        }
        return TransferError(.badRequest, "unexpected answer \(body.status)")
    }

    /// Runs a transfer, again after transient failures (each run resumes); records the definitive outcome.
    private func retrying(
        _ transferID: String, _ attempt: TaskAttempt, _ direction: TransferDirection, _ path: String,
        _ run: (inout Int) async throws -> TransferCompleted
    ) async throws -> TransferCompleted {
        var lastError: any Error = TransferError(.unavailable, "no run")
        for number in 1...max(1, settings.attempts) {
            var sent = 0
            do {
                return try await run(&sent)
            } catch let error as TransferError {
                if error.code == .pathEscapes || error.code == .tooLarge {
                    if error.code == .pathEscapes {
                        try await reject(attempt, direction, path, error.code, error.message)
                    }
                    throw error
                }
                try await recordFailure(transferID, attempt, direction, path, error.code.rawValue, error.message, sent)
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                if Task.isCancelled { throw CancellationError() }
                lastError = error
                logger.warning(
                    "transfer interrupted, will resume",
                    metadata: [
                        "transfer.id": "\(transferID)", "run": "\(number)", "chunks.sent": "\(sent)",
                        "error": "\(error)",
                    ])
                try await Task.sleep(for: settings.retryPause)
            }
        }
        let message = "gave up after \(settings.attempts) runs: \(lastError)"
        try await recordFailure(transferID, attempt, direction, path, WireError.Code.unavailable.rawValue, message, 0)
        throw TransferError(.unavailable, message)
    }

    private func reject(
        _ attempt: TaskAttempt, _ direction: TransferDirection, _ path: String, _ code: WireError.Code,
        _ reason: String
    ) async throws -> Never {
        logger.warning("transfer rejected", metadata: ["task.id": "\(attempt.taskID)", "path": "\(path)", "reason": "\(reason)"])
        try await record(
            .rejected(
                TransferRejected(
                    taskID: attempt.taskID, attempt: attempt.attempt, serverID: serverID, direction: direction,
                    path: path, code: code.rawValue, reason: reason)))
        throw TransferError(code, reason)
    }

    private func recordFailure(
        _ transferID: String, _ attempt: TaskAttempt, _ direction: TransferDirection, _ path: String, _ code: String,
        _ reason: String, _ sent: Int
    ) async throws {
        try await record(
            .failed(
                TransferFailed(
                    transferID: transferID, taskID: attempt.taskID, attempt: attempt.attempt, serverID: serverID,
                    direction: direction, path: path, code: code, reason: reason, chunksSent: sent)))
    }

    private func record(_ event: TransferEvent) async throws {
        try await log.append(.transfer(event), metadata: meta)
    }

    static func size(of path: String) throws -> Int64 {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let size = attributes[.size] as? Int
        else { throw TransferError(.notFound, "cannot read \(path)") }
        return Int64(size)
    }
}
