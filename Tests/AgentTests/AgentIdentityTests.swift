import Domain
import Testing

@testable import Agent

/// Issue 16: an agent answers requests addressed to itself, to an earlier life in its workspace, or to nobody.
@Suite struct AgentIdentityTests {
    @Test func acceptsItselfItsEarlierLivesAndNobodyOnly() {
        let identity = AgentIdentity(instance: "c", earlier: ["a", "b"])
        #expect(identity.accepts(nil))
        #expect(identity.accepts("c"))
        #expect(identity.accepts("a") && identity.accepts("b"))
        #expect(!identity.accepts("d"))
        #expect(!identity.accepts(""))
    }

    @Test func newInstancesAreDistinctAndSortByStart() async throws {
        let first = AgentIdentity()
        try await Task.sleep(for: .milliseconds(2))
        let second = AgentIdentity()
        #expect(first.instance != second.instance)
        #expect(first.instance < second.instance, "UUIDv7: a later start sorts later")
        #expect(!first.accepts(second.instance))
    }
}
