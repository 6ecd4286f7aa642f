import GRDB

/// Code that runs inside the append transaction, after the events are written and before the commit.
///
/// Read models that the CLI reads register a hook, so that a read never sees a read model ahead of or behind the log:
/// if the hook throws, the whole append rolls back.
public protocol AppendHook: Sendable {
    /// Registers the hook's own tables; runs once when the log is opened.
    func registerMigrations(_ migrator: inout DatabaseMigrator)
    /// Called with the events just appended, in position order, inside the write transaction.
    ///
    /// - Throws: Anything; the append then fails and nothing is written.
    func didAppend(_ events: [StoredEvent], in db: Database) throws
}
