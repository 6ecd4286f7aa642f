import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Finds the sockets a process listens on, from `/proc` (Linux): its file descriptors that are sockets (their
/// inodes, from `/proc/<pid>/fd/*` → `socket:[inode]`), matched against its network namespace's socket tables
/// (`/proc/<pid>/net/{tcp,tcp6,udp,udp6,unix}`, proc(5)).
///
/// Listening means: a TCP socket in state `0A` (LISTEN); any UDP socket not connected to a peer (a remote address of
/// zero: it receives from anyone); a unix socket with the `__SO_ACCEPTCON` flag (`00010000`: `listen` was called),
/// or a bound unconnected unix datagram socket.
public enum ListeningSockets {
    /// One listening socket.
    public struct Found: Sendable, Equatable, CustomStringConvertible {
        /// `tcp`, `tcp6`, `udp`, `udp6` or `unix`.
        public var table: String
        public var inode: UInt64
        /// The local address (hex, as in the table) or the unix path.
        public var address: String
        public var description: String { "\(table) inode \(inode) \(address)" }
    }

    /// The listening sockets among `inodes` in one table's text. Pure.
    ///
    /// - Parameters:
    ///   - table: `tcp`, `tcp6`, `udp`, `udp6` or `unix`.
    ///   - text: The table's contents, header line included.
    ///   - inodes: The process's socket inodes.
    public static func listening(table: String, text: String, inodes: Set<UInt64>) -> [Found] {
        var found: [Found] = []
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            if table == "unix" {
                // Num RefCount Protocol Flags Type St Inode [Path]
                guard fields.count >= 7, let inode = UInt64(fields[6]), inodes.contains(inode) else { continue }
                let flags = UInt32(fields[3], radix: 16) ?? 0
                let type = fields[4]
                let state = fields[5]
                let path = fields.count > 7 ? fields[7] : ""
                let accepting = flags & 0x0001_0000 != 0
                let boundDatagram = type == "0002" && state == "01" && !path.isEmpty
                if accepting || boundDatagram { found.append(Found(table: table, inode: inode, address: path)) }
            } else {
                // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
                guard fields.count >= 10, let inode = UInt64(fields[9]), inodes.contains(inode) else { continue }
                let remote = fields[2]
                let state = fields[3]
                let listening =
                    table.hasPrefix("tcp") ? state == "0A" : remote.split(separator: ":").first.map { $0.allSatisfy { $0 == "0" } } ?? false
                if listening { found.append(Found(table: table, inode: inode, address: fields[1])) }
            }
        }
        return found
    }

    /// A /proc file's whole text: read until end of file (its size is reported as 0, and a reader that trusts the
    /// size, or stops at one page, misses sockets on a busy host).
    static func readAll(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            data += buffer[0..<count]
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// The socket inodes among a process's open file descriptors.
    public static func socketInodes(pid: Int32) -> Set<UInt64> {
        let directory = "/proc/\(pid)/fd"
        var inodes: Set<UInt64> = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + entry),
                target.hasPrefix("socket:["), target.hasSuffix("]"),
                let inode = UInt64(target.dropFirst("socket:[".count).dropLast())
            else { continue }
            inodes.insert(inode)
        }
        return inodes
    }

    /// Every listening socket of a running process, and how many sockets it holds in all (so a test can tell "none
    /// listen" from "none found").
    public static func of(pid: Int32) -> (listening: [Found], sockets: Int) {
        let inodes = socketInodes(pid: pid)
        var found: [Found] = []
        for table in ["tcp", "tcp6", "udp", "udp6", "unix"] {
            found += listening(table: table, text: readAll("/proc/\(pid)/net/\(table)"), inodes: inodes)
        }
        return (found, inodes.count)
    }
}
