import Testing
import Transport

/// Runs every ``MessageQueueConformance`` check against ``EmbeddedQueue``: each test gets its own SQLite file in a
/// temporary directory, a store on it, and a test clock that `advanceTime` moves.
@Suite(.timeLimit(.minutes(1))) struct EmbeddedQueueConformanceTests {
    @Test func deliversAGroupInSendOrder() async throws {
        try await EmbeddedQueueFixture().conformance.deliversAGroupInSendOrder()
    }

    @Test func inFlightMessageBlocksOnlyItsGroup() async throws {
        try await EmbeddedQueueFixture().conformance.inFlightMessageBlocksOnlyItsGroup()
    }

    @Test func returnsSeveralMessagesOfAGroupInOrder() async throws {
        try await EmbeddedQueueFixture().conformance.returnsSeveralMessagesOfAGroupInOrder()
    }

    @Test func deduplicatesEvenAfterDelete() async throws {
        try await EmbeddedQueueFixture().conformance.deduplicatesEvenAfterDelete()
    }

    @Test func redeliversAfterTheVisibilityTimeout() async throws {
        try await EmbeddedQueueFixture().conformance.redeliversAfterTheVisibilityTimeout()
    }

    @Test func usesTheQueueVisibilityTimeoutByDefault() async throws {
        try await EmbeddedQueueFixture().conformance.usesTheQueueVisibilityTimeoutByDefault()
    }

    @Test func zeroVisibilityTimeoutLeavesTheMessageDeliverable() async throws {
        try await EmbeddedQueueFixture().conformance.zeroVisibilityTimeoutLeavesTheMessageDeliverable()
    }

    @Test func changeVisibilityExtendsAndReleases() async throws {
        try await EmbeddedQueueFixture().conformance.changeVisibilityExtendsAndReleases()
    }

    @Test func changeVisibilityRefusesAMessageNoLongerInFlight() async throws {
        try await EmbeddedQueueFixture().conformance.changeVisibilityRefusesAMessageNoLongerInFlight()
    }

    @Test func refusesAnUnknownReceiptHandle() async throws {
        try await EmbeddedQueueFixture().conformance.refusesAnUnknownReceiptHandle()
    }

    @Test func sendsBatchesOfUpToTenEntries() async throws {
        try await EmbeddedQueueFixture().conformance.sendsBatchesOfUpToTenEntries()
    }

    @Test func failsABadBatchEntryAlone() async throws {
        try await EmbeddedQueueFixture().conformance.failsABadBatchEntryAlone()
    }

    @Test func refusesABatchOverOneMebibyteInTotal() async throws {
        try await EmbeddedQueueFixture().conformance.refusesABatchOverOneMebibyteInTotal()
    }

    @Test func countsTheSizeLimitInBytes() async throws {
        try await EmbeddedQueueFixture().conformance.countsTheSizeLimitInBytes()
    }

    @Test func refusesCharactersSQSDoesNotAllow() async throws {
        try await EmbeddedQueueFixture().conformance.refusesCharactersSQSDoesNotAllow()
    }

    @Test func longPollReturnsEmptyAfterTheWaitTime() async throws {
        try await EmbeddedQueueFixture().conformance.longPollReturnsEmptyAfterTheWaitTime()
    }

    @Test func longPollReturnsWhenAMessageArrives() async throws {
        try await EmbeddedQueueFixture().conformance.longPollReturnsWhenAMessageArrives()
    }

    @Test func concurrentReceiversNeverShareAMessage() async throws {
        try await EmbeddedQueueFixture().conformance.concurrentReceiversNeverShareAMessage()
    }

    @Test func refusesOutOfRangeReceiveParameters() async throws {
        try await EmbeddedQueueFixture().conformance.refusesOutOfRangeReceiveParameters()
    }

    @Test func countsVisibleAndInFlightMessages() async throws {
        try await EmbeddedQueueFixture().conformance.countsVisibleAndInFlightMessages()
    }

    @Test func countsItsOperations() async throws {
        try await EmbeddedQueueFixture().conformance.countsItsOperations()
    }
}
