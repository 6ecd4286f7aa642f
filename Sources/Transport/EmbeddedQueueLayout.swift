import Foundation

/// Where the embedded queues of one queue path (`--queue-path`, or `<state-dir>/queues.db`) live.
///
/// Each group of queues gets its own SQLite file, so that a process stalled while it holds one file's write lock (an
/// agent frozen with `SIGSTOP`) stalls only that group: for the path `/state/queues.db`, the queues of server
/// `gpu-07` (`touchstone-gpu-07-1-req.fifo`, `touchstone-gpu-07-1-resp.fifo`, …) live in
/// `/state/queues.d/touchstone-gpu-07.db`. Doorbell files, one per queue, are in `/state/queues.d/bells/` (see
/// `Doorbells`). A queue file made by an earlier version (one file holding every queue) is still used as it is.
public enum EmbeddedQueueLayout: Sendable, Equatable {
    /// One SQLite file per group of queues (``groupName(ofQueue:)``) in `directory`.
    case filePerGroup(directory: String)
    /// Every queue in the one SQLite file at `path`: the layout of earlier versions, used when that file exists.
    case singleFile(path: String, directory: String)

    /// What is at the queue path when a store opens it.
    public enum Found: Sendable, Equatable {
        /// Nothing, or an empty file.
        case nothing
        /// A file with content: an earlier version's single queue file (or something else, refused when opened).
        case file
        /// A directory.
        case directory
    }

    /// The layout for a queue path, given what is there.
    ///
    /// - Parameters:
    ///   - path: The queue path as configured.
    ///   - found: What is at `path`.
    /// - Returns: ``singleFile(path:directory:)`` when a non-empty file is there, else ``filePerGroup(directory:)``.
    /// - Throws: ``QueueError`` `.invalidParameter` when `path` is a directory.
    public static func choose(path: String, found: Found) throws(QueueError) -> EmbeddedQueueLayout {
        switch found {
        case .nothing: return .filePerGroup(directory: directory(forPath: path))
        case .file: return .singleFile(path: path, directory: directory(forPath: path))
        case .directory:
            throw QueueError(
                .invalidParameter,
                "the queue path \(path) is a directory; give a file path such as \(path)/queues.db "
                    + "(its queues then live in \(path)/queues.d)")
        }
    }

    /// The directory of a queue path's group files and doorbells: the path with its extension replaced by `.d`
    /// (`/state/queues.db` → `/state/queues.d`), or `.d` appended when that would be the path itself.
    public static func directory(forPath path: String) -> String {
        let stem = (path as NSString).deletingPathExtension + ".d"
        return stem == path ? path + ".d" : stem
    }

    /// The group a queue belongs to: its name without `.fifo` and without a channel suffix `-<digits>-req` or
    /// `-<digits>-resp` (the wire's `<prefix>-<server>-<n>-req.fifo`), so that one server's channels share a file.
    ///
    /// - Parameter name: A queue name (letters, digits, `-`, `_`, ending in `.fifo`).
    /// - Returns: For example `touchstone-gpu-07` for `touchstone-gpu-07-1-req.fifo`, `jobs` for `jobs.fifo`.
    public static func groupName(ofQueue name: String) -> String {
        let base = name.hasSuffix(".fifo") ? String(name.dropLast(5)) : name
        for suffix in ["-req", "-resp"] where base.hasSuffix(suffix) {
            let channel = base.dropLast(suffix.count)
            guard let dash = channel.lastIndex(of: "-"), dash > channel.startIndex else { continue }
            let digits = channel[channel.index(after: dash)...]
            if !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) { return String(channel[..<dash]) }
        }
        return base
    }

    /// The SQLite file that holds queue `name`.
    public func file(ofQueue name: String) -> String {
        switch self {
        case .filePerGroup(let directory): "\(directory)/\(Self.groupName(ofQueue: name)).db"
        case .singleFile(let path, _): path
        }
    }

    /// The directory of the doorbell files, one per queue name.
    public var doorbellDirectory: String {
        switch self {
        case .filePerGroup(let directory), .singleFile(_, let directory): directory + "/bells"
        }
    }
}
