import FileSignals
import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Who holds a lock, read from `/proc/locks` without touching the lock (the CLI's "backend down since …").
@Suite(.serialized) struct PIDLockFileTests {
    @Test func theHolderIsFoundPastTheFirstPageOfTheLockTable() throws {
        let directory = TemporaryDirectory("locks")
        // Enough locks of our own that the table outgrows one 4 KiB read whatever else the host holds.
        for index in 0..<120 {
            try PIDLockFile.acquire(directory.file("lock-\(index)"))
        }
        let last = directory.file("lock-119")
        #expect(PIDLockFile.holder(last) == getpid())
        #expect(PIDLockFile.holder(directory.file("lock-0")) == getpid())
        #expect(PIDLockFile.holder(directory.file("never-locked")) == nil)
        try Data().write(to: URL(fileURLWithPath: directory.file("unlocked")))
        #expect(PIDLockFile.holder(directory.file("unlocked")) == nil)
    }

    @Test func aTableLineNamesItsDeviceInHexAndItsInodeInDecimal() {
        let table = """
            1: OFDLCK ADVISORY  READ -1 00:06:3 0 EOF
            2: FLOCK  ADVISORY  WRITE 1596 fe:00:16493010 0 EOF
            2: -> FLOCK  ADVISORY  WRITE 1700 fe:00:16493010 0 EOF
            3: FLOCK  ADVISORY  WRITE 77 08:01:42 0 EOF
            """
        #expect(PIDLockFile.holder(of: 0xfe00, inode: 16_493_010, in: table) == 1596)
        #expect(PIDLockFile.holder(of: 0x0801, inode: 42, in: table) == 77)
        #expect(PIDLockFile.holder(of: 0x0801, inode: 43, in: table) == nil)
    }
}
