import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive `flock(2)` on a file that names its holder's PID: one process per directory (one backend per state
/// directory, one agent per workspace).
///
/// The lock is held by an open file descriptor that is never closed, so it lasts exactly as long as the process,
/// even one killed with SIGKILL; the kernel drops it at exit. The PID written in the file is a hint for the
/// error message only: the lock, not the file's content, decides.
public enum PIDLockFile {
    /// Why the lock could not be taken.
    public enum Failure: Error, Sendable, Equatable {
        /// Another process holds the lock; its PID when the file names one.
        case held(pid: Int32?)
        /// The lock file cannot be opened or created (`errno`'s text).
        case cannotOpen(String)
    }

    /// Takes the lock on `path` (created with mode 0644 when missing) and writes this process's PID into it.
    ///
    /// - Throws: ``Failure/held(pid:)`` when another process holds it; ``Failure/cannotOpen(_:)`` when the file
    ///   cannot be opened.
    public static func acquire(_ path: String) throws(Failure) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .cannotOpen(String(cString: strerror(errno))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = read(fd, &buffer, buffer.count)
            close(fd)
            let text = count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : ""
            throw .held(pid: Int32(text.filter { $0.isNumber }))
        }
        _ = ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { write(fd, $0, strlen($0)) }
        // The descriptor stays open for the life of the process: the lock goes with it.
    }

    /// The process holding the lock on `path`, read from `/proc/locks` (Linux) without touching the lock: probing
    /// with `flock` would make a process taking it at that instant fail.
    ///
    /// - Returns: The holder's PID as `/proc/locks` gives it; `nil` when the file does not exist or nobody holds it.
    public static func holder(_ path: String) -> Int32? {
        var info = stat()
        guard stat(path, &info) == 0, let table = readWhole("/proc/locks") else { return nil }
        return holder(of: UInt64(info.st_dev), inode: UInt64(info.st_ino), in: table)
    }

    /// A `/proc` file read until `read` returns 0: such files have no size, and one read returns one page, which a
    /// busy host's lock table outgrows.
    static func readWhole(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if count == 0 { break }
            bytes.append(contentsOf: buffer[..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The PID of the `FLOCK` on the file `device`/`inode` in a `/proc/locks` table
    /// (`1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`: device as hexadecimal major:minor, inode decimal). Pure.
    public static func holder(of device: UInt64, inode: UInt64, in table: String) -> Int32? {
        // Linux's dev_t split (glibc's gnu_dev_major / gnu_dev_minor).
        let major = ((device >> 8) & 0xfff) | ((device >> 32) & ~0xfff)
        let minor = (device & 0xff) | ((device >> 12) & ~0xff)
        let file = String(format: "%02llx:%02llx:%llu", major, minor, inode)
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            // A blocked waiter's line reads "1: -> FLOCK …": not a holder.
            guard fields.count >= 6, fields[1] == "FLOCK", fields[5] == file else { continue }
            return Int32(fields[4])
        }
        return nil
    }
}
