import Crypto
import Domain
import Foundation
import TestSupport
import Testing
import Wire

@Suite struct FileChunksTests {
    static func randomData(_ count: Int, seed: UInt64 = 1) -> Data {
        var generator = SeededGenerator(seed: seed)
        return Data((0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    static func sha(_ data: Data) -> String { FileDigest.hex(SHA256.hash(data: data)) }

    @Test func aFullChunkMessageStaysWellUnderTheSQSLimit() {
        let identity = FileIdentity(size: 50 << 20, sha256: String(repeating: "a", count: 64))
        let chunk = PutChunk(
            transferID: "put-tsk-00000000000a-1-0", taskID: Fixtures.taskA, attempt: 1, path: "data/train.bin",
            executable: false, file: identity, index: 12, data: Data(count: FileChunking.chunkSize))
        let envelope = RequestEnvelope(
            requestID: Fixtures.request(1), server: Fixtures.gpu1, channel: 2, epoch: 0, sequence: 1,
            sentAt: Fixtures.epoch0, expiresAt: Fixtures.epoch0, command: .putChunk(chunk))
        let bytes = WireCoding.encode(envelope).utf8.count
        #expect(bytes < 1_048_576 / 3, "\(bytes) bytes")
        #expect(bytes > FileChunking.chunkSize * 4 / 3)
        #expect(identity.chunkCount == 267)
        #expect(FileChunking.length(ofChunk: 266, size: 50 << 20) == (50 << 20) - 266 * FileChunking.chunkSize)
        let decoded = try? WireCoding.decodeRequest(WireCoding.encode(envelope))
        #expect(decoded == envelope)
    }

    @Test func chunkRangesRoundTrip() {
        let indices: Set<Int> = [0, 1, 2, 5, 7, 8]
        let ranges = ChunkRange.ranges(indices)
        #expect(ranges == [.init(lower: 0, upper: 3), .init(lower: 5, upper: 6), .init(lower: 7, upper: 9)])
        #expect(ChunkRange.indices(ranges) == indices)
    }

    @Test func aPartialFileSurvivesReopeningAndIsVerifiedOnArrival() throws {
        let directory = TemporaryDirectory("partial")
        defer { directory.remove() }
        let content = Self.randomData(1_000_000)
        let identity = FileIdentity(size: Int64(content.count), sha256: Self.sha(content), chunkSize: 65_536)
        let chunk = { (index: Int) in
            content.subdata(in: (index * 65_536)..<min(content.count, (index + 1) * 65_536))
        }
        let first = try PartialFile(staging: directory.file("staging"), transferID: "t1", identity: identity)
        for index in [3, 0, 1] { try first.write(index: index, data: chunk(index)) }
        #expect(try first.finishIfComplete(destination: directory.file("out.bin")) == false)
        // A new instance (a restarted process) finds what the first one confirmed.
        let second = try PartialFile(staging: directory.file("staging"), transferID: "t1", identity: identity)
        #expect(second.received() == [0, 1, 3])
        for index in 0..<identity.chunkCount where !second.received().contains(index) {
            try second.write(index: index, data: chunk(index))
        }
        #expect(try second.finishIfComplete(destination: directory.file("out.bin")))
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory.file("out.bin"))) == content)
        #expect(second.progress().complete)
        #expect(throws: TransferError.self) { try second.write(index: 99, data: Data()) }
    }

    @Test func aCorruptedChunkIsDetectedAndThePartialDiscarded() throws {
        let directory = TemporaryDirectory("corrupt")
        defer { directory.remove() }
        let content = Self.randomData(200_000, seed: 2)
        let identity = FileIdentity(size: Int64(content.count), sha256: Self.sha(content), chunkSize: 65_536)
        let partial = try PartialFile(staging: directory.file("staging"), transferID: "t2", identity: identity)
        for index in 0..<identity.chunkCount {
            var data = content.subdata(in: (index * 65_536)..<min(content.count, (index + 1) * 65_536))
            if index == 1 { data[data.startIndex + 7] ^= 0xFF }
            try partial.write(index: index, data: data)
        }
        let error = #expect(throws: TransferError.self) {
            try partial.finishIfComplete(destination: directory.file("out.bin"))
        }
        #expect(error?.code == .checksumMismatch)
        #expect(partial.received().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: directory.file("out.bin")))
        let wrongLength = #expect(throws: TransferError.self) { try partial.write(index: 0, data: Data(count: 3)) }
        #expect(wrongLength?.code == .badChunk)
    }

    @Test func pathsCannotLeaveTheRoot() throws {
        let directory = TemporaryDirectory("confine")
        defer { directory.remove() }
        let root = directory.file("work")
        try FileManager.default.createDirectory(atPath: root + "/inside", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root + "/out", withDestinationPath: "/etc")
        try FileManager.default.createSymbolicLink(atPath: root + "/passwd", withDestinationPath: "/etc/passwd")
        try FileManager.default.createSymbolicLink(atPath: root + "/alias", withDestinationPath: root + "/inside")
        for escaping in ["../x", "/etc/passwd", "a/../../x", "out/passwd", "passwd", "out/new/dir/file", "."] {
            let error = #expect(throws: TransferError.self, "\(escaping)") {
                try PathConfinement.resolve(escaping, in: root, creatingDirectories: true)
            }
            #expect(error?.code == .pathEscapes)
        }
        #expect(!FileManager.default.fileExists(atPath: "/etc/new"))
        let real = PathConfinement.realPathForTests(root)
        #expect(try PathConfinement.resolve("alias/f.txt", in: root, creatingDirectories: true) == real + "/inside/f.txt")
        #expect(try PathConfinement.resolve("a/b/c.bin", in: root, creatingDirectories: true) == real + "/a/b/c.bin")
        #expect(FileManager.default.fileExists(atPath: root + "/a/b"))
    }
}
