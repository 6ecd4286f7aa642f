import Foundation

/// The epoch in force on each of the agent's channels, as the backend last set it (journaled, so it survives a
/// restart). A request of an older epoch was sent before a queue drain: it is refused, never executed.
actor ChannelEpochs {
    private let journal: AgentJournal
    private var epochs: [Int: Int64]

    init(journal: AgentJournal) async throws {
        self.journal = journal
        self.epochs = try await journal.epochs()
    }

    /// Checks a request's epoch against the channel's, adopting a newer one (the backend drained the channel).
    ///
    /// - Returns: `nil` when the request may run, or the channel's epoch when the request's is older.
    /// - Throws: ``EventStoreError`` when a newer epoch cannot be journaled (the request is then not executed).
    func admit(_ epoch: Int64, channel: Int) async throws -> Int64? {
        let current = epochs[channel] ?? 0
        if epoch < current { return current }
        if epoch > current {
            try await journal.recordEpoch(epoch, channel: channel)
            epochs[channel] = epoch
        }
        return nil
    }
}
