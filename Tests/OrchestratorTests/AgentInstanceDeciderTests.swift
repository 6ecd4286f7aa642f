import Domain
import Testing

@testable import Orchestrator

/// Issue 16: who may answer for a server. Every combination of known instance, addressed instance, responder and
/// notice, against a table written out by hand.
@Suite struct AgentInstanceDeciderTests {
    enum Expected: Equatable {
        case accept, adopt(String, String), fence
    }

    static func expected(known: String?, addressed: String?, responder: String?, notice: Bool) -> Expected {
        if notice { return .fence }
        switch (known, addressed, responder) {
        case (_, _, nil): return .accept  // an agent older than instance IDs
        case ("A"?, _, "A"?): return .accept
        case (nil, _, let r?): return .adopt(r, "first")
        case ("A"?, "A"?, let r?): return .adopt(r, "restarted")
        case ("A"?, nil, let r?): return .adopt(r, "replaced")
        case ("A"?, "X"?, _): return .fence  // addressed to a third instance, answered by a non-known one
        default: fatalError("unlisted case \(String(describing: known)) \(String(describing: addressed)) \(String(describing: responder))")
        }
    }

    @Test(arguments: [nil, "A"] as [String?], [nil, "A", "X"] as [String?])
    func everyCombination(known: String?, addressed: String?) {
        for responder in [nil, "A", "B"] as [String?] {
            for notice in [false, true] {
                let verdict = Decide.responder(known: known, addressed: addressed, responder: responder, fencedNotice: notice)
                let got: Expected
                switch verdict {
                case .accept: got = .accept
                case .adopt(let instance, let reason): got = .adopt(instance, reason)
                case .fence(let reason):
                    got = .fence
                    #expect(!reason.isEmpty)
                }
                #expect(
                    got == Self.expected(known: known, addressed: addressed, responder: responder, notice: notice),
                    "known \(String(describing: known)) addressed \(String(describing: addressed)) responder \(String(describing: responder)) notice \(notice)")
            }
        }
    }

    @Test func aFencedReasonNamesBothInstances() {
        guard case .fence(let reason) = Decide.responder(known: "A", addressed: "X", responder: "B", fencedNotice: false)
        else { Issue.record("not fenced"); return }
        #expect(reason.contains("B") && reason.contains("X") && reason.contains("A"))
    }

    @Test func requestsGoToTheKnownInstanceOnlyWhileItAnswers() {
        #expect(Decide.address(known: "A", reachable: true) == "A")
        #expect(Decide.address(known: "A", reachable: false) == nil)
        #expect(Decide.address(known: nil, reachable: true) == nil)
        let address = AgentAddress(known: "A", reachable: false)
        #expect(address.current == nil)
        address.setReachable(true)
        #expect(address.current == "A")
        address.adopt("B")
        #expect(address.current == "B" && address.known == "B")
    }
}
