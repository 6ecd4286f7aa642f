import Foundation
import TestSupport
import Testing
import Wire

/// The `envelope` fuzz target's committed inputs (tools/fuzz), through the same public entry points: each seed decodes
/// as what its name says, and every input (seeds and any crash found) is answered without a crash, a decoded envelope
/// encoding and decoding again.
@Suite struct EnvelopeFuzzRegressionTests {
    @Test func everyCommittedInputIsAnsweredWithoutACrash() throws {
        let seeds = FuzzInputs.seeds("envelope")
        #expect(seeds.count >= 6)
        for input in seeds + FuzzInputs.crashes("envelope") {
            let text = String(decoding: input.bytes, as: UTF8.self)
            let request = try? WireCoding.decodeRequest(text)
            let response = try? WireCoding.decodeResponse(text)
            if seeds.contains(where: { $0.name == input.name }) {
                #expect((input.name.hasPrefix("request-") ? request != nil : response != nil), "\(input.name)")
            }
            if let request {
                #expect(try WireCoding.decodeRequest(WireCoding.encode(request)) == request, "\(input.name)")
            }
            if let response {
                #expect(try WireCoding.decodeResponse(WireCoding.encode(response)) == response, "\(input.name)")
            }
            _ = WireCoding.salvageRequestID(text)
        }
    }
}
