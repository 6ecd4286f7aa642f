import Domain
import Foundation
import Logging
import Wire

/// The agent's side of file transfers and log reads (docs/files.md): puts into an attempt's working directory, reads
/// out of it, and reads of its `stdout.log` / `stderr.log`.
///
/// Every path is resolved with ``PathConfinement`` inside `<attempt directory>/work`; an escape is answered with the
/// error `pathEscapes`, which the backend records as `transfer.rejected`. Puts are staged in
/// `<workspace>/transfers/` (see ``PartialFile``), so a put interrupted by a `kill -9` of the agent resumes from the
/// chunks already on disk.
struct TransferHandler: Sendable {
    let configuration: AgentConfiguration
    let tasks: AgentTasks
    let logger: Logger

    /// Where partial files wait: per agent, named by content hash.
    var staging: String { configuration.workspace + "/transfers" }

    func execute(_ command: Command) async -> ResponseBody {
        do {
            switch command {
            case .putChunk(let chunk):
                return .transferProgress(try put(chunk))
            case .transferStatus(let query):
                let key = TaskAttempt(taskID: query.taskID, attempt: query.attempt)
                _ = try destination(key, path: query.path, creating: false)
                return .transferProgress(try PartialFile(staging: staging, transferID: query.transferID, identity: query.file).progress())
            case .statFile(let reference):
                let path = try existingFile(reference)
                let (sha, size) = try FileDigest.sha256(ofFileAt: path)
                return .fileInfo(FileInfo(path: reference.path, file: FileIdentity(size: size, sha256: sha)))
            case .readChunk(let read):
                guard read.chunkSize > 0, read.chunkSize <= FileChunking.chunkSize, read.index >= 0 else {
                    throw TransferError(.badChunk, "chunk \(read.index) of \(read.chunkSize) bytes cannot be read")
                }
                let path = try existingFile(read.file)
                let (data, size) = try ChunkReader.read(path: path, index: read.index, chunkSize: read.chunkSize)
                return .fileChunk(FileChunk(index: read.index, size: size, data: data))
            case .readLog(let read):
                return .logData(try await readLog(read))
            case .hello, .startTask, .startTasks, .listTasks, .stopTask, .heartbeat, .sync:
                return .error(WireError(.badRequest, "\(command.name) is not a transfer command"))
            }
        } catch let error as TransferError {
            logger.warning("transfer refused", metadata: ["command": "\(command.name)", "error": "\(error)"])
            return .error(error.wireError)
        } catch {
            logger.warning("transfer failed", metadata: ["command": "\(command.name)", "error": "\(error)"])
            return .error(WireError(.executionFailed, "\(command.name) failed: \(error)"))
        }
    }

    private func put(_ chunk: PutChunk) throws -> TransferProgress {
        let key = TaskAttempt(taskID: chunk.taskID, attempt: chunk.attempt)
        let target = try destination(key, path: chunk.path, creating: true)
        let partial = try PartialFile(staging: staging, transferID: chunk.transferID, identity: chunk.file)
        if partial.isComplete { return partial.progress() }
        try partial.write(index: chunk.index, data: chunk.data)
        if try partial.finishIfComplete(destination: target, executable: chunk.executable) {
            logger.info(
                "file received",
                metadata: ["task.id": "\(chunk.taskID)", "path": "\(chunk.path)", "bytes": "\(chunk.file.size)"])
        }
        return partial.progress()
    }

    /// The confined path of a file in an attempt's working directory.
    private func destination(_ key: TaskAttempt, path: String, creating: Bool) throws -> String {
        guard TaskID.isValid(key.taskID.rawValue), key.attempt >= 1 else {
            throw TransferError(.badRequest, "task ID \(key.taskID.rawValue.debugDescription) or attempt \(key.attempt) is not valid")
        }
        return try PathConfinement.resolve(
            path, in: configuration.taskDirectory(key) + "/work", creatingDirectories: creating)
    }

    private func existingFile(_ reference: TaskFileReference) throws -> String {
        let key = TaskAttempt(taskID: reference.taskID, attempt: reference.attempt)
        guard FileManager.default.fileExists(atPath: configuration.taskDirectory(key)) else {
            throw TransferError(.notFound, "no attempt \(key) on this agent")
        }
        let path = try destination(key, path: reference.path, creating: false)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw TransferError(.notFound, "\(reference.path) does not exist in the working directory of \(key) or is not a file")
        }
        return path
    }

    private func readLog(_ read: ReadLog) async throws -> LogData {
        let key = TaskAttempt(taskID: read.taskID, attempt: read.attempt)
        guard TaskID.isValid(read.taskID.rawValue), read.attempt >= 1, read.offset >= 0 else {
            throw TransferError(.badRequest, "readLog of \(key) from \(read.offset) is not valid")
        }
        let running = await tasks.report(for: key)?.state == .running
        let path = configuration.taskDirectory(key) + "/" + read.stream.fileName
        guard let handle = FileHandle(forReadingAtPath: path) else {
            if await tasks.report(for: key) != nil {
                return LogData(offset: read.offset, data: Data(), size: 0, running: running)
            }
            throw TransferError(.notFound, "no \(read.stream.fileName) for \(key) on this agent")
        }
        defer { try? handle.close() }
        let size = Int64(try handle.seekToEnd())
        guard read.offset < size else { return LogData(offset: read.offset, data: Data(), size: size, running: running) }
        try handle.seek(toOffset: UInt64(read.offset))
        let count = Int(min(Int64(max(0, min(read.maxBytes, FileChunking.maxLogBytes))), size - read.offset))
        let data = try handle.read(upToCount: count) ?? Data()
        return LogData(offset: read.offset, data: data, size: size, running: running)
    }

    /// Why an attempt cannot start yet: an input announced in its spec is missing or has another size; `nil` when all
    /// are in place (the backend puts them, verified by SHA-256, before it sends the start).
    static func missingInput(_ start: StartTask, directory: String) -> String? {
        for input in start.spec.inputs {
            let path = directory + "/work/" + input.path
            let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int
            guard let size, Int64(size) == input.size else {
                return "input \(input.path) is not in the working directory (it must be put before the start)"
            }
        }
        return nil
    }
}
