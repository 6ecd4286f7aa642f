import Foundation

/// Which way a file travels: `put` (backend → an attempt's working directory) or `get` (→ the backend's artifact
/// store).
public enum TransferDirection: String, Codable, Sendable, Equatable {
    case put, get
}

/// Facts about file transfers (docs/files.md), in the stream `transfer/<task>`: one `started` per run of a transfer
/// (a resumed run says how many chunks the receiver already held), then `completed`, `failed` or nothing (the backend
/// stopped). Never one event per chunk: the per-chunk requests are the channel's `channel.request.sent` events.
public enum TransferEvent: Sendable, Equatable {
    case started(TransferStarted)  // "transfer.started" v1
    case completed(TransferCompleted)  // "transfer.completed" v1
    case failed(TransferFailed)  // "transfer.failed" v1
    case rejected(TransferRejected)  // "transfer.rejected" v1

    /// The task the transfer is for.
    public var taskID: TaskID {
        switch self {
        case .started(let e): return e.taskID
        case .completed(let e): return e.taskID
        case .failed(let e): return e.taskID
        case .rejected(let e): return e.taskID
        }
    }
}

/// A transfer (or a resumed run of one) began: the receiver was asked what it holds.
public struct TransferStarted: EventPayload {
    public static let eventType = "transfer.started"
    public static let schemaVersion = 1
    /// Stable across runs: `put-<task>-<attempt>-<n>` for input n, `get-<task>-<attempt>-<sha256 prefix>` for an output.
    public var transferID: String
    public var taskID: TaskID
    public var attempt: Int
    public var serverID: ServerID
    public var direction: TransferDirection
    /// Relative to the attempt's working directory.
    public var path: String
    /// Bytes of the whole file.
    public var size: Int64
    /// Lower-case hex SHA-256 of the whole file.
    public var sha256: String
    public var chunkCount: Int
    /// Chunks the receiver already held (0 for a fresh transfer; more when it resumes).
    public var chunksHeld: Int

    public init(
        transferID: String, taskID: TaskID, attempt: Int, serverID: ServerID, direction: TransferDirection,
        path: String, size: Int64, sha256: String, chunkCount: Int, chunksHeld: Int
    ) {
        self.transferID = transferID
        self.taskID = taskID
        self.attempt = attempt
        self.serverID = serverID
        self.direction = direction
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.chunkCount = chunkCount
        self.chunksHeld = chunksHeld
    }
}

/// Every chunk arrived and the whole file's SHA-256 matched on the receiving side.
public struct TransferCompleted: EventPayload {
    public static let eventType = "transfer.completed"
    public static let schemaVersion = 1
    public var transferID: String
    public var taskID: TaskID
    public var attempt: Int
    public var serverID: ServerID
    public var direction: TransferDirection
    public var path: String
    public var size: Int64
    public var sha256: String
    public var chunkCount: Int
    /// Chunks sent by the run that completed it (less than `chunkCount` when it resumed).
    public var chunksSent: Int

    public init(
        transferID: String, taskID: TaskID, attempt: Int, serverID: ServerID, direction: TransferDirection,
        path: String, size: Int64, sha256: String, chunkCount: Int, chunksSent: Int
    ) {
        self.transferID = transferID
        self.taskID = taskID
        self.attempt = attempt
        self.serverID = serverID
        self.direction = direction
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.chunkCount = chunkCount
        self.chunksSent = chunksSent
    }
}

/// A run of a transfer failed: checksum mismatch, missing file, timeouts past the retry budget.
public struct TransferFailed: EventPayload {
    public static let eventType = "transfer.failed"
    public static let schemaVersion = 1
    public var transferID: String
    public var taskID: TaskID
    public var attempt: Int
    public var serverID: ServerID
    public var direction: TransferDirection
    public var path: String
    /// The wire error code (`checksumMismatch`, `notFound`, `timeout`, …).
    public var code: String
    public var reason: String
    public var chunksSent: Int

    public init(
        transferID: String, taskID: TaskID, attempt: Int, serverID: ServerID, direction: TransferDirection,
        path: String, code: String, reason: String, chunksSent: Int
    ) {
        self.transferID = transferID
        self.taskID = taskID
        self.attempt = attempt
        self.serverID = serverID
        self.direction = direction
        self.path = path
        self.code = code
        self.reason = reason
        self.chunksSent = chunksSent
    }
}

/// A transfer was refused before any chunk moved: a path leaving the working directory (`pathEscapes`: `..`, absolute,
/// a symlink pointing outside) or a file over the size limit (`tooLarge`).
public struct TransferRejected: EventPayload {
    public static let eventType = "transfer.rejected"
    public static let schemaVersion = 1
    public var taskID: TaskID
    public var attempt: Int
    public var serverID: ServerID?
    public var direction: TransferDirection
    /// The path as asked for (not resolved).
    public var path: String
    /// `pathEscapes` or `tooLarge`.
    public var code: String
    public var reason: String

    public init(
        taskID: TaskID, attempt: Int, serverID: ServerID?, direction: TransferDirection, path: String, code: String,
        reason: String
    ) {
        self.taskID = taskID
        self.attempt = attempt
        self.serverID = serverID
        self.direction = direction
        self.path = path
        self.code = code
        self.reason = reason
    }
}

extension StreamName {
    /// `transfer/<task>`: the file transfers of one task (all attempts).
    public static func transfer(_ id: TaskID) -> String { "transfer/\(id)" }
}
