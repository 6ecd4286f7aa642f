import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One cgroup per task attempt, so that the whole process tree can be killed at once.
///
/// Prefers cgroup v2 (`cgroup.kill`, Linux 5.14+), then the v1 freezer (freeze, SIGKILL every member, thaw); a host
/// with neither (or no permission) gets `nil` from ``detect(root:)`` and the runtime falls back to a process-group
/// kill. Source: the kernel's Documentation/admin-guide/cgroup-v2.rst and cgroup-v1/freezer-subsystem.rst.
public struct CgroupController: Sendable {
    public enum Kind: String, Sendable { case v2, v1Freezer }
    public var kind: Kind
    /// The directory under which task cgroups are made, e.g. `/sys/fs/cgroup/unified/touchstone/gpu-07`.
    public var base: String

    /// Finds a usable cgroup hierarchy and makes `base/<scope>` in it.
    ///
    /// - Parameter scope: A directory name for this agent (its server name).
    /// - Returns: `nil` when no hierarchy is writable here.
    public static func detect(scope: String, mounts: String = "/proc/mounts") -> CgroupController? {
        guard let table = try? String(contentsOfFile: mounts, encoding: .utf8) else { return nil }
        var v2: String?
        var freezer: String?
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 4 else { continue }
            if fields[2] == "cgroup2" { v2 = String(fields[1]) }
            if fields[2] == "cgroup", fields[3].split(separator: ",").contains("freezer") { freezer = String(fields[1]) }
        }
        if let v2, FileManager.default.fileExists(atPath: v2 + "/cgroup.kill") || hasKill(v2) {
            let base = "\(v2)/touchstone/\(scope)"
            if (try? FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)) != nil,
                FileManager.default.fileExists(atPath: base + "/cgroup.kill")
            {
                return CgroupController(kind: .v2, base: base)
            }
        }
        if let freezer {
            let base = "\(freezer)/touchstone/\(scope)"
            if (try? FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)) != nil {
                return CgroupController(kind: .v1Freezer, base: base)
            }
        }
        return nil
    }

    private static func hasKill(_ root: String) -> Bool {
        // The root cgroup has no cgroup.kill; a child made to probe tells whether the kernel supports it.
        let probe = root + "/touchstone"
        try? FileManager.default.createDirectory(atPath: probe, withIntermediateDirectories: true)
        return FileManager.default.fileExists(atPath: probe + "/cgroup.kill")
    }

    /// Makes the cgroup of one attempt and returns its directory.
    ///
    /// - Throws: A file-system error when the directory cannot be made.
    public func create(_ name: String) throws -> String {
        let path = "\(base)/\(name)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The file a process writes its PID to in order to join the cgroup.
    public func procsFile(_ path: String) -> String {
        kind == .v2 ? path + "/cgroup.procs" : path + "/tasks"
    }

    /// PIDs in the cgroup.
    public func members(_ path: String) -> [Int32] {
        guard let text = try? String(contentsOfFile: procsFile(path), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { Int32($0) }
    }

    /// SIGKILLs every process in the cgroup.
    public func killAll(_ path: String) {
        switch kind {
        case .v2:
            write("1", to: path + "/cgroup.kill")
        case .v1Freezer:
            write("FROZEN", to: path + "/freezer.state")
            for pid in members(path) { kill(pid, SIGKILL) }
            write("THAWED", to: path + "/freezer.state")
        }
    }

    /// Removes the cgroup once it is empty (best effort).
    public func remove(_ path: String) {
        rmdir(path)
    }

    private func write(_ text: String, to file: String) {
        let fd = open(file, O_WRONLY)
        guard fd >= 0 else { return }
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        close(fd)
    }
}
