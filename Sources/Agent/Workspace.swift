import Domain
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
