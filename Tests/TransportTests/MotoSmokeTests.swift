import Testing

/// A smoke subset of ``MessageQueueConformance`` against `moto_server`, started by `tools/test` on 127.0.0.1.
///
/// Checks left out, because moto departs there from AWS's documented behaviour, which is the truth (ministack runs
/// them all in `MinistackConformanceTests`):
/// - `deduplicatesEvenAfterDelete`: the SQS Developer Guide ("Using the message deduplication ID") says a
///   deduplication ID is remembered for the 5-minute interval even after the message is deleted; moto forgets it on
///   delete.
/// - `redeliversAfterTheVisibilityTimeout` and `changeVisibilityExtendsAndReleases`: a receipt handle of an earlier
///   receive is stale (SQS API reference, `DeleteMessage` and `ChangeMessageVisibility`: the most recent handle must
///   be used, `ReceiptHandleIsInvalid`); moto accepts stale handles.
/// - `changeVisibilityRefusesAMessageNoLongerInFlight`: `MessageNotInflight` (SQS API reference,
///   `ChangeMessageVisibility`) is not raised by moto.
/// - `countsTheSizeLimitInBytes`: the SQS API reference (`SendMessage`, `MessageBody`) counts the size in bytes;
///   moto counts characters. Our client checks bytes before sending, which ministack's run covers.
@Suite(
    .enabled(if: SQSTestServer.motoEnabled, "TOUCHSTONE_MOTO_ENDPOINT is not set: run tools/test to start moto_server"),
    .timeLimit(.minutes(1))
)
struct MotoSmokeTests {
    @Test func deliversAGroupInSendOrder() async throws {
        try await SQSTestServer.requireMoto().conformance().deliversAGroupInSendOrder()
    }

    @Test func inFlightMessageBlocksOnlyItsGroup() async throws {
        try await SQSTestServer.requireMoto().conformance().inFlightMessageBlocksOnlyItsGroup()
    }

    @Test func sendsBatchesOfUpToTenEntries() async throws {
        try await SQSTestServer.requireMoto().conformance().sendsBatchesOfUpToTenEntries()
    }

    @Test func failsABadBatchEntryAlone() async throws {
        try await SQSTestServer.requireMoto().conformance().failsABadBatchEntryAlone()
    }

    @Test func refusesCharactersSQSDoesNotAllow() async throws {
        try await SQSTestServer.requireMoto().conformance().refusesCharactersSQSDoesNotAllow()
    }

    @Test func longPollReturnsWhenAMessageArrives() async throws {
        try await SQSTestServer.requireMoto().conformance().longPollReturnsWhenAMessageArrives()
    }

    @Test func countsVisibleAndInFlightMessages() async throws {
        try await SQSTestServer.requireMoto().conformance().countsVisibleAndInFlightMessages()
    }

    @Test func refusesAnUnknownReceiptHandle() async throws {
        try await SQSTestServer.requireMoto().conformance().refusesAnUnknownReceiptHandle()
    }
}
