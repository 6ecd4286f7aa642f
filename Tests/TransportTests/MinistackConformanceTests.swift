import Testing

/// Runs every ``MessageQueueConformance`` check against ``SQSQueue`` on ministack, started by `tools/test` on
/// 127.0.0.1 with `AUTH=true` (SigV4 signatures verified) and an IAM user's key. Skipped with a message when
/// `TOUCHSTONE_SQS_ENDPOINT` is not set outside `tools/test`; under `tools/test` (`TOUCHSTONE_REQUIRE_SQS=1`) a missing
/// server fails every check.
@Suite(
    .enabled(if: SQSTestServer.ministackEnabled, "TOUCHSTONE_SQS_ENDPOINT is not set: run tools/test to start ministack"),
    .timeLimit(.minutes(1))
) struct MinistackConformanceTests {
    @Test func deliversAGroupInSendOrder() async throws {
        try await SQSTestServer.requireMinistack().conformance().deliversAGroupInSendOrder()
    }

    @Test func inFlightMessageBlocksOnlyItsGroup() async throws {
        try await SQSTestServer.requireMinistack().conformance().inFlightMessageBlocksOnlyItsGroup()
    }

    @Test func returnsSeveralMessagesOfAGroupInOrder() async throws {
        try await SQSTestServer.requireMinistack().conformance().returnsSeveralMessagesOfAGroupInOrder()
    }

    @Test func deduplicatesEvenAfterDelete() async throws {
        try await SQSTestServer.requireMinistack().conformance().deduplicatesEvenAfterDelete()
    }

    @Test func redeliversAfterTheVisibilityTimeout() async throws {
        try await SQSTestServer.requireMinistack().conformance().redeliversAfterTheVisibilityTimeout()
    }

    @Test func usesTheQueueVisibilityTimeoutByDefault() async throws {
        try await SQSTestServer.requireMinistack().conformance().usesTheQueueVisibilityTimeoutByDefault()
    }

    @Test func zeroVisibilityTimeoutLeavesTheMessageDeliverable() async throws {
        try await SQSTestServer.requireMinistack().conformance().zeroVisibilityTimeoutLeavesTheMessageDeliverable()
    }

    @Test func changeVisibilityExtendsAndReleases() async throws {
        try await SQSTestServer.requireMinistack().conformance().changeVisibilityExtendsAndReleases()
    }

    /// AWS is the truth: the SQS API reference, `ChangeMessageVisibility`, Errors: `MessageNotInflight` ("The
    /// specified message isn't in flight"). ministack 1.5.33 extends the visibility of a message whose timeout has
    /// passed instead (`_act_change_visibility` only checks the handle), so this check is a known issue there; if
    /// ministack starts refusing, the known issue is not recorded and this test fails, asking to drop the wrapper.
    @Test func changeVisibilityRefusesAMessageNoLongerInFlight() async throws {
        let conformance = try SQSTestServer.requireMinistack().conformance()
        await withKnownIssue("ministack 1.5.33 does not raise MessageNotInflight (AWS documents it)") {
            try await conformance.changeVisibilityRefusesAMessageNoLongerInFlight()
        }
    }

    @Test func countsItsOperations() async throws {
        try await SQSTestServer.requireMinistack().conformance().countsItsOperations()
    }

    @Test func refusesAnUnknownReceiptHandle() async throws {
        try await SQSTestServer.requireMinistack().conformance().refusesAnUnknownReceiptHandle()
    }

    @Test func sendsBatchesOfUpToTenEntries() async throws {
        try await SQSTestServer.requireMinistack().conformance().sendsBatchesOfUpToTenEntries()
    }

    @Test func failsABadBatchEntryAlone() async throws {
        try await SQSTestServer.requireMinistack().conformance().failsABadBatchEntryAlone()
    }

    @Test func refusesABatchOverOneMebibyteInTotal() async throws {
        try await SQSTestServer.requireMinistack().conformance().refusesABatchOverOneMebibyteInTotal()
    }

    @Test func countsTheSizeLimitInBytes() async throws {
        try await SQSTestServer.requireMinistack().conformance().countsTheSizeLimitInBytes()
    }

    @Test func refusesCharactersSQSDoesNotAllow() async throws {
        try await SQSTestServer.requireMinistack().conformance().refusesCharactersSQSDoesNotAllow()
    }

    @Test func longPollReturnsEmptyAfterTheWaitTime() async throws {
        try await SQSTestServer.requireMinistack().conformance().longPollReturnsEmptyAfterTheWaitTime()
    }

    @Test func longPollReturnsWhenAMessageArrives() async throws {
        try await SQSTestServer.requireMinistack().conformance().longPollReturnsWhenAMessageArrives()
    }

    @Test func concurrentReceiversNeverShareAMessage() async throws {
        try await SQSTestServer.requireMinistack().conformance().concurrentReceiversNeverShareAMessage()
    }

    @Test func refusesOutOfRangeReceiveParameters() async throws {
        try await SQSTestServer.requireMinistack().conformance().refusesOutOfRangeReceiveParameters()
    }

    @Test func countsVisibleAndInFlightMessages() async throws {
        try await SQSTestServer.requireMinistack().conformance().countsVisibleAndInFlightMessages()
    }
}
