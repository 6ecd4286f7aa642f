import Domain
import FileSignals
import Foundation

/// File-system work inside an attempt's directory, confined to it.
enum Workspace {
    /// Makes `directory/work` and writes the working files into it.
    ///
    /// - Throws: ``WorkspaceError`` for a path that escapes the directory; a file-system error otherwise.
    static func prepare(directory: String, files: [WorkingFile]) throws {
        let work = directory + "/work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        for file in files {
            guard RelativePath.isConfined(file.path) else { throw WorkspaceError(path: file.path) }
            let target = URL(fileURLWithPath: work).appendingPathComponent(file.path)
            try FileManager.default.createDirectory(
                at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            guard isInside(target.deletingLastPathComponent().path, root: work) else {
                throw WorkspaceError(path: file.path)
            }
            try file.contents.write(to: target)
            if file.executable {
                try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: target.path)
            }
        }
    }

    /// Reads the small output files of an ended attempt; missing, oversize, escaping or non-UTF-8 files are skipped.
    static func collectOutputs(_ paths: [String], in work: String) -> [String: String] {
        var outputs: [String: String] = [:]
        for path in paths where RelativePath.isConfined(path) {
            let url = URL(fileURLWithPath: work).appendingPathComponent(path)
            guard isInside(url.path, root: work),
                let attributes = try? FileManager.default.attributesOfItem(atPath: url.path),
                let size = attributes[.size] as? Int, size <= TaskSpec.maxOutputFileBytes,
                let data = try? Data(contentsOf: url), let text = String(data: data, encoding: .utf8)
            else { continue }
            outputs[path] = text
        }
        return outputs
    }

    /// Whether `path`, with symlinks resolved, is `root` or inside it.
    static func isInside(_ path: String, root: String) -> Bool {
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        let base = URL(fileURLWithPath: root).resolvingSymlinksInPath().path
        return resolved == base || resolved.hasPrefix(base + "/")
    }
}

/// A path that would leave the task's working directory.
struct WorkspaceError: Error, CustomStringConvertible {
    var path: String
    var description: String { "path \(path) escapes the task's working directory" }
}

/// One agent per workspace: an exclusive `flock` on `<workspace>/agent.lock`, held until the process exits.
///
/// Two agents on one workspace would adopt each other's processes, and the one stopped second would kill the
/// other's tasks at its drain deadline; the second one therefore refuses to start.
public enum WorkspaceLock {
    /// The lock file inside a workspace.
    public static func path(workspace: String) -> String { workspace + "/agent.lock" }

    /// Creates the workspace when missing and takes its lock for the life of this process.
    ///
    /// - Throws: ``WorkspaceLockError`` naming the holder's PID (when it wrote one) or why the file cannot be opened.
    public static func acquire(workspace: String) throws(WorkspaceLockError) {
        do {
            try FileManager.default.createDirectory(
                atPath: workspace, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw WorkspaceLockError(description: "cannot create the workspace \(workspace): \(error.localizedDescription)")
        }
        let file = path(workspace: workspace)
        do {
            try PIDLockFile.acquire(file)
        } catch {
            switch error {
            case .held(let pid):
                throw WorkspaceLockError(
                    description: "another agent (pid \(pid.map(String.init) ?? "unknown")) is running on the workspace "
                        + "\(workspace): stop it first, or give this agent its own --workspace")
            case .cannotOpen(let reason):
                throw WorkspaceLockError(description: "cannot open \(file): \(reason)")
            }
        }
    }
}

/// The workspace is locked by another agent, or its lock file cannot be opened; one line.
public struct WorkspaceLockError: Error, Sendable, CustomStringConvertible {
    public var description: String
}
