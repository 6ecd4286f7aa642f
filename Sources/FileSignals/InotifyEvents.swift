import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One inotify event (`inotify(7)`): its watch descriptor, its mask, and the entry's name when the watch is on a
/// directory (empty for a watch on a file).
struct InotifyEvent {
    var wd: Int32
    var mask: UInt32
    var name: [UInt8]
}

/// Reads every pending event of a non-blocking inotify descriptor, until `read` returns nothing more.
///
/// - Parameters:
///   - fd: An inotify descriptor opened with `IN_NONBLOCK`.
///   - buffer: Scratch space, reused between calls; at least one event with a 255-byte name must fit (64 KiB does).
/// - Returns: The events in the order the kernel queued them.
func readInotifyEvents(_ fd: Int32, into buffer: inout [UInt8]) -> [InotifyEvent] {
    var events: [InotifyEvent] = []
    while true {
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if count <= 0 { return events }
        buffer.withUnsafeBytes { bytes in
            // struct inotify_event { int wd; uint32_t mask; uint32_t cookie; uint32_t len; char name[]; }
            var offset = 0
            let header = MemoryLayout<inotify_event>.size
            while offset + header <= count {
                let wd = bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                let nameBytes = bytes[(offset + header)..<min(offset + header + length, count)]
                events.append(InotifyEvent(wd: wd, mask: mask, name: Array(nameBytes.prefix(while: { $0 != 0 }))))
                offset += header + length
            }
        }
    }
}

/// An inotify descriptor and a stop pipe, waited on by one dedicated thread (never a Swift-concurrency thread).
///
/// The thread calls ``next(timeoutMilliseconds:buffer:)`` in a loop and ``finish()`` when it returns; any thread may
/// call ``stop()``, which wakes the waiting thread through the pipe.
final class InotifyLoop: Sendable {
    /// Why ``next(timeoutMilliseconds:buffer:)`` returned.
    enum Wake {
        case events([InotifyEvent])
        case timedOut
        case stopped
        /// `poll` failed with something other than `EINTR`: the loop cannot go on.
        case failed
    }

    private struct Control {
        var stopRequested = false
        var exited = false
    }

    /// The inotify descriptor (`IN_NONBLOCK | IN_CLOEXEC`), for `inotify_add_watch`.
    let fd: Int32
    private let stopFD: Int32
    private let stopWriteFD: Int32
    private let control = Mutex(Control())

    /// - Throws: ``FileSignalError`` naming the failed call (`inotify_init1`, for example when
    ///   `fs.inotify.max_user_instances` is reached, or `pipe`).
    init() throws(FileSignalError) {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw Self.systemError("inotify_init1") }
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            let error = Self.systemError("pipe")
            Glibc.close(fd)
            throw error
        }
        for end in pipeFDs {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
        }
        self.fd = fd
        stopFD = pipeFDs[0]
        stopWriteFD = pipeFDs[1]
    }

    /// Asks the thread to return from its wait with `.stopped`. Safe to call more than once, and after ``finish()``.
    func stop() {
        control.withLock { control in
            guard !control.exited, !control.stopRequested else { return }
            control.stopRequested = true
            var byte: UInt8 = 1
            _ = Glibc.write(stopWriteFD, &byte, 1)
        }
    }

    /// Closes the descriptors; the thread calls it once, as it exits.
    func finish() {
        control.withLock { control in
            control.exited = true
            Glibc.close(fd)
            Glibc.close(stopFD)
            Glibc.close(stopWriteFD)
        }
    }

    /// Waits for events, a stop, or `timeoutMilliseconds` (-1: no timeout).
    func next(timeoutMilliseconds: Int32, buffer: inout [UInt8]) -> Wake {
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
        while true {
            let ready = poll(&fds, 2, timeoutMilliseconds)
            if ready < 0 {
                if errno == EINTR { continue }
                return .failed
            }
            if fds[1].revents != 0 { return .stopped }
            if fds[0].revents != 0 { return .events(readInotifyEvents(fd, into: &buffer)) }
            return .timedOut
        }
    }

    private static func systemError(_ call: String) -> FileSignalError {
        FileSignalError(message: "\(call) failed: \(String(cString: strerror(errno)))")
    }
}
