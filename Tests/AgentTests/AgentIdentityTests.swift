import Domain
import Foundation
import TestSupport
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

/// A workspace copied along with its journal does not make the copy's agent a later life of the original one.
@Suite struct WorkspaceIdentityTests {
    @Test func aCopiedJournalTrustsNoEarlierInstance() async throws {
        let directory = TemporaryDirectory("identity")
        let original = directory.file("ws-a")
        let copy = directory.file("ws-c")
        for path in [original, copy] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        let journal = try AgentJournal(path: original + "/journal.db", serverID: ServerID(rawValue: "gpu-01")!)
        let here = try WorkspaceIdentity.current(original)
        try await journal.recordInstance("01-a", workspace: here)
        #expect(try await journal.instances(in: here) == ["01-a"])
        // The same journal read from another directory (a copy): its instances are someone else's.
        #expect(try await journal.instances(in: try WorkspaceIdentity.current(copy)).isEmpty)
        #expect(throws: (any Error).self) { try WorkspaceIdentity.current(directory.file("missing")) }
    }
}
