import FileSignals
import Foundation
import Testing

/// ``Doorbells``: a ring wakes only its own name's signal, in this instance at once and in another instance (the
/// stand-in for another process: its own inotify descriptor and thread) through the doorbell file.
@Suite(.timeLimit(.minutes(1))) struct DoorbellsTests {
    @Test func aRingBumpsOnlyItsOwnNamesSignalInThisProcess() throws {
        let directory = EmbeddedQueueFixture.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let doorbells = try Doorbells(directory: directory + "/bells")
        defer { doorbells.close() }
        let a = doorbells.signal(for: "a.fifo")
        let b = doorbells.signal(for: "b.fifo")
        let (seenA, seenB) = (a.generation, b.generation)
        doorbells.ring("a.fifo")
        #expect(a.generation != seenA)
        #expect(b.generation == seenB)
        #expect(FileManager.default.fileExists(atPath: directory + "/bells/a.fifo"))
    }

    @Test func aRingInAnotherInstanceWakesTheWaiterOnThatName() async throws {
        let directory = EmbeddedQueueFixture.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let waiting = try Doorbells(directory: directory)
        let ringing = try Doorbells(directory: directory)
        defer {
            waiting.close()
            ringing.close()
        }
        try #require(waiting.isWatching)
        let a = waiting.signal(for: "a.fifo")
        let b = waiting.signal(for: "b.fifo")
        for round in 0..<3 {
            let (seenA, seenB) = (a.generation, b.generation)
            ringing.ring("a.fifo")
            await a.wait(after: seenA, timeout: .seconds(20))
            #expect(a.generation != seenA, "round \(round): the ring did not arrive")
            #expect(b.generation == seenB)
        }
    }

    @Test func closeWakesWaitersAndClosesLaterSignals() async throws {
        let directory = EmbeddedQueueFixture.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let doorbells = try Doorbells(directory: directory)
        let signal = doorbells.signal(for: "a.fifo")
        let seen = signal.generation
        async let waited: Void = signal.wait(after: seen, timeout: .seconds(20))
        try await Task.sleep(for: .milliseconds(50))
        doorbells.close()
        await waited
        #expect(signal.isClosed)
        #expect(doorbells.signal(for: "later.fifo").isClosed)
    }

    @Test(arguments: [
        ("a.fifo", true), ("x", true), (String(repeating: "n", count: 255), true), ("", false), (".", false),
        ("..", false), ("a/b", false), ("nul\0", false), (String(repeating: "n", count: 256), false),
    ]) func acceptsOnlyPlainFileNames(_ name: String, _ valid: Bool) {
        #expect(Doorbells.isValidName(name) == valid)
    }
}
