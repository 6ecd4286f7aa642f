import Crypto
import Domain
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A file-transfer failure on either side; ``code`` is the ``WireError/Code`` sent back when it crosses the wire.
public struct TransferError: Error, Sendable, CustomStringConvertible {
    public var code: WireError.Code
    public var message: String

    public init(_ code: WireError.Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
    /// The error as a wire error response.
    public var wireError: WireError { WireError(code, message) }
}

/// SHA-256 of files, streamed in ``FileChunking/streamBufferSize`` reads.
public enum FileDigest {
    /// The lower-case hex SHA-256 and the size of a file.
    ///
    /// - Throws: ``TransferError`` `.notFound` when the file cannot be opened; a file-system error on a failed read.
    public static func sha256(ofFileAt path: String) throws -> (sha256: String, size: Int64) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw TransferError(.notFound, "cannot open \(path)")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        var size: Int64 = 0
        while let data = try handle.read(upToCount: FileChunking.streamBufferSize), !data.isEmpty {
            hasher.update(data: data)
            size += Int64(data.count)
        }
        return (hex(hasher.finalize()), size)
    }

    /// Lower-case hex of a digest.
    public static func hex(_ digest: some Sequence<UInt8>) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    /// Whether a string is a lower-case hex SHA-256.
    public static func isValid(_ sha256: String) -> Bool {
        sha256.utf8.count == 64 && sha256.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}

/// Reads single chunks of a file at their offsets: never more than one chunk in memory.
public enum ChunkReader {
    /// Reads chunk `index` (``FileChunking/length(ofChunk:size:chunkSize:)`` bytes at `index × chunkSize`).
    ///
    /// - Throws: ``TransferError`` `.notFound` when the file cannot be opened; a file-system error on a failed read.
    public static func read(path: String, index: Int, chunkSize: Int) throws -> (data: Data, fileSize: Int64) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw TransferError(.notFound, "cannot open \(path)")
        }
        defer { try? handle.close() }
        let size = Int64(try handle.seekToEnd())
        try handle.seek(toOffset: UInt64(Int64(index) * Int64(chunkSize)))
        let length = FileChunking.length(ofChunk: index, size: size, chunkSize: chunkSize)
        let data = length == 0 ? Data() : (try handle.read(upToCount: length) ?? Data())
        return (data, size)
    }
}

/// The receiving side of a transfer, persisted so that it survives a `kill -9`: a partial file
/// (`<staging>/<sha256>.part`, chunks written at their offsets) and a record of the chunks it holds
/// (`<staging>/<sha256>.chunks`: a JSON header line with the file's identity, then one index per line, each appended
/// and fsynced after its data was fsynced). A chunk is confirmed only once both are on disk, so a crash loses at most
/// the chunk in flight.
///
/// The staging name is the content hash, so a put of the same file for another attempt resumes the same partial. A
/// finished transfer leaves `<staging>/<transferID>.done` (holding the SHA-256), so a chunk or status query repeated
/// after completion answers "complete" again.
public struct PartialFile: Sendable {
    public let staging: String
    public let transferID: String
    public let identity: FileIdentity

    var partPath: String { "\(staging)/\(identity.sha256).part" }
    var recordPath: String { "\(staging)/\(identity.sha256).chunks" }
    var donePath: String { "\(staging)/\(Self.safeName(transferID)).done" }

    /// - Parameters:
    ///   - staging: The directory of partial files (created if missing).
    ///   - transferID: The transfer's ID (names the completion marker).
    ///   - identity: Size, SHA-256 and chunking of the whole file.
    /// - Throws: ``TransferError`` `.badChunk` for an identity that cannot be right (bad hash, wrong chunk count).
    public init(staging: String, transferID: String, identity: FileIdentity) throws {
        guard FileDigest.isValid(identity.sha256), identity.size >= 0, identity.chunkSize > 0,
            identity.chunkCount == FileChunking.chunkCount(size: identity.size, chunkSize: identity.chunkSize)
        else {
            throw TransferError(.badChunk, "the announced file (size \(identity.size), \(identity.chunkCount) chunks) is not consistent")
        }
        self.staging = staging
        self.transferID = transferID
        self.identity = identity
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
    }

    static func safeName(_ id: String) -> String {
        String(id.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
    }

    /// Whether this transfer already completed (its marker holds the same SHA-256).
    public var isComplete: Bool {
        (try? String(contentsOfFile: donePath, encoding: .utf8)) == identity.sha256
    }

    /// The chunks durably held. A record for another file identity (same hash, other chunking) is discarded.
    public func received() -> Set<Int> {
        guard let text = try? String(contentsOfFile: recordPath, encoding: .utf8) else { return [] }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard let header = lines.first, header == Substring(headerLine) else {
            discard()
            return []
        }
        lines.removeFirst()
        var indices = Set<Int>()
        // A torn last line (a crash in the middle of an append) does not parse and is ignored: that chunk is resent.
        for line in lines {
            if let index = Int(line), index >= 0, index < identity.chunkCount { indices.insert(index) }
        }
        return indices
    }

    /// The progress to report.
    public func progress() -> TransferProgress {
        if isComplete { return TransferProgress(transferID: transferID, received: [ChunkRange(lower: 0, upper: identity.chunkCount)], complete: true) }
        return TransferProgress(transferID: transferID, received: ChunkRange.ranges(received()), complete: false)
    }

    private var headerLine: String {
        "{\"chunkSize\":\(identity.chunkSize),\"sha256\":\"\(identity.sha256)\",\"size\":\(identity.size)}"
    }

    /// Writes one chunk at its offset and records it, both fsynced.
    ///
    /// - Throws: ``TransferError`` `.badChunk` for an index out of range or a length that does not fit the file; a
    ///   file-system error.
    public func write(index: Int, data: Data) throws {
        guard index >= 0, index < identity.chunkCount else {
            throw TransferError(.badChunk, "chunk \(index) is out of range 0..<\(identity.chunkCount)")
        }
        let expected = FileChunking.length(ofChunk: index, size: identity.size, chunkSize: identity.chunkSize)
        guard data.count == expected else {
            throw TransferError(.badChunk, "chunk \(index) has \(data.count) bytes, expected \(expected)")
        }
        if !FileManager.default.fileExists(atPath: recordPath) {
            _ = FileManager.default.createFile(atPath: partPath, contents: nil)
            try Data((headerLine + "\n").utf8).write(to: URL(fileURLWithPath: recordPath))
        }
        if !FileManager.default.fileExists(atPath: partPath) {
            _ = FileManager.default.createFile(atPath: partPath, contents: nil)
        }
        guard let part = FileHandle(forUpdatingAtPath: partPath) else {
            throw TransferError(.notFound, "cannot open \(partPath)")
        }
        defer { try? part.close() }
        try part.seek(toOffset: UInt64(Int64(index) * Int64(identity.chunkSize)))
        try part.write(contentsOf: data)
        try part.synchronize()
        guard let record = FileHandle(forUpdatingAtPath: recordPath) else {
            throw TransferError(.notFound, "cannot open \(recordPath)")
        }
        defer { try? record.close() }
        try record.seekToEnd()
        try record.write(contentsOf: Data("\(index)\n".utf8))
        try record.synchronize()
    }

    /// When every chunk is held: verifies the whole file's SHA-256 and moves it to `destination`.
    ///
    /// - Parameters:
    ///   - destination: The final path; its parent directory must exist.
    ///   - executable: Sets mode 0755 instead of 0644.
    /// - Returns: Whether the file is complete and in place.
    /// - Throws: ``TransferError`` `.checksumMismatch` (the partial file and its record are deleted); a file-system
    ///   error.
    @discardableResult
    public func finishIfComplete(destination: String, executable: Bool = false) throws -> Bool {
        if isComplete { return true }
        guard received().count == identity.chunkCount else { return false }
        if identity.size == 0, !FileManager.default.fileExists(atPath: partPath) {
            _ = FileManager.default.createFile(atPath: partPath, contents: nil)
        }
        let (sha, size) = try FileDigest.sha256(ofFileAt: partPath)
        guard sha == identity.sha256, size == identity.size else {
            discard()
            throw TransferError(
                .checksumMismatch,
                "the assembled file has SHA-256 \(sha) (\(size) bytes), not the announced \(identity.sha256) "
                    + "(\(identity.size) bytes); the partial file was discarded")
        }
        _ = unlink(destination)
        guard rename(partPath, destination) == 0 else {
            throw TransferError(.notFound, "cannot move the file to \(destination): \(String(cString: strerror(errno)))")
        }
        chmod(destination, executable ? 0o755 : 0o644)
        try? FileManager.default.removeItem(atPath: recordPath)
        try Data(identity.sha256.utf8).write(to: URL(fileURLWithPath: donePath))
        return true
    }

    /// Removes the completion marker, so that the same transfer can run again (its file was deleted since).
    public func forgetCompletion() {
        try? FileManager.default.removeItem(atPath: donePath)
    }

    /// Deletes the partial file and its record.
    public func discard() {
        try? FileManager.default.removeItem(atPath: partPath)
        try? FileManager.default.removeItem(atPath: recordPath)
    }
}

/// Resolves relative paths inside a root directory, refusing every way out: `..`, absolute paths, NUL bytes, and
/// symlinks (anywhere on the path) whose target lies outside the root.
public enum PathConfinement {
    /// The real path of `relative` inside `root`.
    ///
    /// - Parameters:
    ///   - relative: The path as the operator gave it.
    ///   - root: The directory it must stay in; created when missing.
    ///   - creatingDirectories: Make missing parent directories (for a file about to be written).
    /// - Returns: The path to open: every existing component resolved, guaranteed inside `root`.
    /// - Throws: ``TransferError`` `.pathEscapes` naming the path.
    public static func resolve(_ relative: String, in root: String, creatingDirectories: Bool) throws -> String {
        guard RelativePath.isConfined(relative) else {
            throw TransferError(.pathEscapes, "path \(relative.debugDescription) must be relative and stay inside the task's working directory (no '..', not absolute)")
        }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let base = realPath(root) ?? root
        let components = relative.split(separator: "/").map(String.init).filter { $0 != "." }
        guard !components.isEmpty else {
            throw TransferError(.pathEscapes, "path \(relative.debugDescription) names the working directory itself, not a file")
        }
        var current = base
        for (position, component) in components.enumerated() {
            let next = current + "/" + component
            let isLast = position == components.count - 1
            var status = stat()
            if lstat(next, &status) == 0 {
                if (status.st_mode & 0o170000) == 0o120000 {  // S_IFMT, S_IFLNK
                    guard let target = realPath(next), target == base || target.hasPrefix(base + "/") else {
                        throw TransferError(.pathEscapes, "path \(relative.debugDescription) leaves the task's working directory through the symlink \(component)")
                    }
                    current = target
                } else {
                    current = next
                }
            } else {
                if !isLast && creatingDirectories {
                    try FileManager.default.createDirectory(atPath: next, withIntermediateDirectories: false)
                }
                current = next
            }
        }
        return current
    }

    /// The resolved path of an existing directory (for tests comparing resolved paths).
    public static func realPathForTests(_ path: String) -> String { realPath(path) ?? path }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
