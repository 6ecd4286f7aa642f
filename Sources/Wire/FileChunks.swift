import Domain
import Foundation

// MARK: Chunking rules

/// How files are cut into queue messages.
///
/// A chunk carries at most ``chunkSize`` raw bytes: 192 KiB = 196,608 bytes, which base64 turns into 262,144 bytes of
/// JSON string. With the envelope (IDs, dates, path, hash: under 2 KiB) a chunk message stays near 258 KiB, a quarter of
/// the SQS limit of 1 MiB (1,048,576 UTF-8 bytes incl. the envelope and base64). Bigger chunks would fit (the raw limit
/// is about 760 KiB) but would hold the transfer channel, the agent's memory and one SQLite row of the embedded queue
/// four times longer per message, for a throughput gain that disappears into the per-message round trip anyway.
public enum FileChunking {
    /// Raw bytes per chunk: 192 KiB (see above). Every chunk but the last has exactly this size.
    public static let chunkSize = 192 * 1024
    /// The most bytes one `readLog` answer carries (same reasoning as ``chunkSize``).
    public static let maxLogBytes = 192 * 1024
    /// Bytes read at once when hashing or copying a file: memory stays bounded whatever the file's size.
    public static let streamBufferSize = 1024 * 1024

    /// The number of chunks of a file: at least 1 (an empty file is one empty chunk).
    public static func chunkCount(size: Int64, chunkSize: Int = chunkSize) -> Int {
        max(1, Int((size + Int64(chunkSize) - 1) / Int64(chunkSize)))
    }

    /// The byte length of chunk `index` of a file of `size` bytes.
    public static func length(ofChunk index: Int, size: Int64, chunkSize: Int = chunkSize) -> Int {
        let start = Int64(index) * Int64(chunkSize)
        return Int(max(0, min(Int64(chunkSize), size - start)))
    }
}

// MARK: Wire shapes

/// A run of chunk indices `lower..<upper`, as received by the side that stores the file.
public struct ChunkRange: Codable, Sendable, Equatable {
    public var lower: Int
    public var upper: Int

    public init(lower: Int, upper: Int) {
        self.lower = lower
        self.upper = upper
    }

    /// Compresses a set of indices into sorted ranges (a 10 GiB file is 54,614 chunks: ranges keep the answer small).
    public static func ranges(_ indices: Set<Int>) -> [ChunkRange] {
        var result: [ChunkRange] = []
        for index in indices.sorted() {
            if let last = result.last, last.upper == index {
                result[result.count - 1].upper = index + 1
            } else {
                result.append(ChunkRange(lower: index, upper: index + 1))
            }
        }
        return result
    }

    /// The indices of some ranges.
    public static func indices(_ ranges: [ChunkRange]) -> Set<Int> {
        var set = Set<Int>()
        for range in ranges where range.lower < range.upper { set.formUnion(range.lower..<range.upper) }
        return set
    }
}

/// The identity of a whole file in transit: what every chunk repeats, so each can be checked on its own.
public struct FileIdentity: Codable, Sendable, Equatable {
    /// The file's size in bytes.
    public var size: Int64
    /// Lower-case hex SHA-256 of the whole file (64 characters).
    public var sha256: String
    /// Raw bytes per chunk (``FileChunking/chunkSize``); every chunk but the last has exactly this many.
    public var chunkSize: Int
    /// The number of chunks, `max(1, ceil(size / chunkSize))`.
    public var chunkCount: Int

    public init(size: Int64, sha256: String, chunkSize: Int = FileChunking.chunkSize) {
        self.size = size
        self.sha256 = sha256
        self.chunkSize = chunkSize
        self.chunkCount = FileChunking.chunkCount(size: size, chunkSize: chunkSize)
    }
}

/// `putChunk`: one chunk of a file for a task attempt's working directory (backend → agent).
///
/// Shape: `{"transferID":"put-tsk-…-1-0","taskID":"tsk-…","attempt":1,"path":"data/train.bin","executable":false,
/// "file":{"size":52428800,"sha256":"<64 hex>","chunkSize":196608,"chunkCount":267},"index":12,"data":"<base64>"}`.
/// `index` is 0-based; `data` holds exactly ``FileChunking/length(ofChunk:size:chunkSize:)`` bytes. The answer is
/// ``TransferProgress``; the chunk that completes the file makes the agent verify the whole file's SHA-256 and move it
/// into place (mismatch: error `checksumMismatch`, partial discarded).
public struct PutChunk: Codable, Sendable, Equatable {
    public var transferID: String
    public var taskID: TaskID
    public var attempt: Int
    /// Relative to the attempt's working directory; `..`, absolute paths and symlink escapes are refused.
    public var path: String
    public var executable: Bool
    public var file: FileIdentity
    public var index: Int
    public var data: Data

    public init(
        transferID: String, taskID: TaskID, attempt: Int, path: String, executable: Bool, file: FileIdentity,
        index: Int, data: Data
    ) {
        self.transferID = transferID
        self.taskID = taskID
        self.attempt = attempt
        self.path = path
        self.executable = executable
        self.file = file
        self.index = index
        self.data = data
    }
}

/// `transferStatus`: "what do you have of this file?" (backend → agent), asked before a put starts or resumes.
///
/// Shape: as ``PutChunk`` without `index` and `data`. The answer is ``TransferProgress``.
public struct TransferStatusQuery: Codable, Sendable, Equatable {
    public var transferID: String
    public var taskID: TaskID
    public var attempt: Int
    public var path: String
    public var file: FileIdentity

    public init(transferID: String, taskID: TaskID, attempt: Int, path: String, file: FileIdentity) {
        self.transferID = transferID
        self.taskID = taskID
        self.attempt = attempt
        self.path = path
        self.file = file
    }
}

/// What the receiving side holds of a file: `{"transferID":"…","received":[{"lower":0,"upper":40}],"complete":false}`.
public struct TransferProgress: Codable, Sendable, Equatable {
    public var transferID: String
    /// Chunks durably stored (written and fsynced), as ranges of indices.
    public var received: [ChunkRange]
    /// The whole file arrived, matched its SHA-256 and is in place.
    public var complete: Bool

    public init(transferID: String, received: [ChunkRange], complete: Bool) {
        self.transferID = transferID
        self.received = received
        self.complete = complete
    }
}

/// A file of a task attempt on the agent: `{"taskID":"tsk-…","attempt":1,"path":"out/model.pt"}`.
public struct TaskFileReference: Codable, Sendable, Equatable {
    public var taskID: TaskID
    public var attempt: Int
    /// Relative to the attempt's working directory.
    public var path: String

    public init(taskID: TaskID, attempt: Int, path: String) {
        self.taskID = taskID
        self.attempt = attempt
        self.path = path
    }
}

/// `statFile` answer: `{"path":"out/model.pt","file":{"size":…,"sha256":"…","chunkSize":196608,"chunkCount":…}}`.
public struct FileInfo: Codable, Sendable, Equatable {
    public var path: String
    public var file: FileIdentity

    public init(path: String, file: FileIdentity) {
        self.path = path
        self.file = file
    }
}

/// `readChunk`: chunk `index` of an agent's file (backend → agent, for a get).
///
/// Shape: `{"file":{"taskID":…,"attempt":1,"path":"out/model.pt"},"index":3,"chunkSize":196608}`; the answer is
/// ``FileChunk``.
public struct ReadChunk: Codable, Sendable, Equatable {
    public var file: TaskFileReference
    public var index: Int
    /// Raw bytes per chunk, as in the ``FileInfo`` the get started from.
    public var chunkSize: Int

    public init(file: TaskFileReference, index: Int, chunkSize: Int) {
        self.file = file
        self.index = index
        self.chunkSize = chunkSize
    }
}

/// One chunk of a file as it is on the agent now: `{"index":3,"size":<whole file, bytes>,"data":"<base64>"}`.
public struct FileChunk: Codable, Sendable, Equatable {
    public var index: Int
    /// The whole file's size when the chunk was read; a change since `statFile` means the file changed.
    public var size: Int64
    public var data: Data

    public init(index: Int, size: Int64, data: Data) {
        self.index = index
        self.size = size
        self.data = data
    }
}

/// Which output of a task's process.
public enum LogStream: String, Codable, Sendable, Equatable, CaseIterable {
    case stdout, stderr

    /// The file in the attempt's directory: `stdout.log` or `stderr.log`.
    public var fileName: String { rawValue + ".log" }
}

/// `readLog`: bytes of an attempt's `stdout.log` or `stderr.log` from `offset`, at most `maxBytes`
/// (capped at ``FileChunking/maxLogBytes``).
///
/// Shape: `{"taskID":"tsk-…","attempt":1,"stream":"stdout","offset":0,"maxBytes":196608}`; the answer is ``LogData``.
public struct ReadLog: Codable, Sendable, Equatable {
    public var taskID: TaskID
    public var attempt: Int
    public var stream: LogStream
    /// Byte offset into the file.
    public var offset: Int64
    public var maxBytes: Int

    public init(taskID: TaskID, attempt: Int, stream: LogStream, offset: Int64, maxBytes: Int = FileChunking.maxLogBytes) {
        self.taskID = taskID
        self.attempt = attempt
        self.stream = stream
        self.offset = offset
        self.maxBytes = maxBytes
    }
}

/// `readLog` answer: `{"offset":0,"data":"<base64>","size":<file size now, bytes>,"running":true}`.
public struct LogData: Codable, Sendable, Equatable {
    public var offset: Int64
    public var data: Data
    /// The file's size when read: more is waiting when `offset + data.count < size`.
    public var size: Int64
    /// Whether the attempt's process still runs (the log may still grow).
    public var running: Bool

    public init(offset: Int64, data: Data, size: Int64, running: Bool) {
        self.offset = offset
        self.data = data
        self.size = size
        self.running = running
    }
}

extension WireError.Code {
    /// A path leaves the task's working directory (`..`, absolute, or through a symlink).
    public static let pathEscapes = WireError.Code(rawValue: "pathEscapes")
    /// The assembled file's SHA-256 is not the one announced; the partial file was discarded.
    public static let checksumMismatch = WireError.Code(rawValue: "checksumMismatch")
    /// The file (or the attempt's log) does not exist, or is not a regular file.
    public static let notFound = WireError.Code(rawValue: "notFound")
    /// A chunk that does not fit the announced file (index out of range, wrong length).
    public static let badChunk = WireError.Code(rawValue: "badChunk")
    /// The file is over the configured transfer limit (checked before any chunk is sent).
    public static let tooLarge = WireError.Code(rawValue: "tooLarge")
    /// The agent could not be reached within the transfer's retry budget.
    public static let unavailable = WireError.Code(rawValue: "unavailable")
}
