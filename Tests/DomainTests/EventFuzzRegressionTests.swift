import Domain
import Foundation
import TestSupport
import Testing

/// The `events` fuzz target's committed inputs (tools/fuzz): `TYPE SCHEMA\nPAYLOAD`, decoded on both paths.
@Suite struct EventFuzzRegressionTests {
    static func split(_ bytes: Data) -> (type: String, schema: Int, payload: Data)? {
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let header = String(decoding: bytes[..<newline], as: UTF8.self).split(separator: " ")
        guard header.count == 2, let schema = Int(header[1]) else { return nil }
        return (String(header[0]), schema, Data(bytes[(newline + 1)...]))
    }

    @Test func everySeedDecodesTheSameOnBothPaths() throws {
        let seeds = FuzzInputs.seeds("events")
        #expect(seeds.count >= 10)
        for seed in seeds {
            let (type, schema, payload) = try #require(Self.split(seed.bytes), "\(seed.name)")
            let fast = try DomainEventCodec.decode(type: type, schema: schema, payload: payload, position: 1)
            let foundation = try DomainEventCodec.decodeWithFoundation(type: type, schema: schema, payload: payload, position: 1)
            #expect(fast == foundation, "\(seed.name)")
        }
    }

    /// The crash inputs found so far: a payload with a duplicate key, which the fast path read as the last occurrence
    /// and Foundation's `JSONDecoder` as the first.
    @Test func everyCrashInputDecodesTheSameOnBothPaths() throws {
        let crashes = FuzzInputs.crashes("events")
        #expect(crashes.count >= 1)
        for crash in crashes {
            let (type, schema, payload) = try #require(Self.split(crash.bytes), "\(crash.name)")
            let fast = Result { try DomainEventCodec.decode(type: type, schema: schema, payload: payload, position: 1) }
            let foundation = Result {
                try DomainEventCodec.decodeWithFoundation(type: type, schema: schema, payload: payload, position: 1)
            }
            switch (fast, foundation) {
            case (.success(let a), .success(let b)): #expect(a == b, "\(crash.name)")
            case (.failure, .failure): break
            default: Issue.record("\(crash.name): one path decodes and the other does not: \(fast) vs \(foundation)")
            }
        }
    }

    @Test func duplicateKeysResolveToTheFirstOccurrenceOnBothPaths() throws {
        let payload = Data(#"{"serverID":"gpu-01","maxTasks":1,"channels":2,"maxTasks":7,"labels":{"a":"x","a":"y"}}"#.utf8)
        let fast = try DomainEventCodec.decode(type: "server.attached", schema: 1, payload: payload, position: 1)
        let foundation = try DomainEventCodec.decodeWithFoundation(type: "server.attached", schema: 1, payload: payload, position: 1)
        #expect(fast == foundation)
        #expect(fast == .serverAttached(ServerAttached(serverID: ServerID(rawValue: "gpu-01")!, maxTasks: 1, channels: 2, labels: ["a": "x"])))
    }
}
