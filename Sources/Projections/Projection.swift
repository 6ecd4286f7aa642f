import Domain

/// A pure fold of domain events into rows keyed by a string (server name, task ID, channel).
///
/// `apply` must touch only the rows named by ``keys(touchedBy:)`` for that event: the persisted read model loads just
/// those rows, applies the event and writes them back, inside the append transaction. The rebuild comparison
/// (``ReadModels/verify(in:upTo:)``) catches a fold that breaks this rule.
public protocol Projection: Sendable, Equatable {
    associatedtype Row: Codable, Sendable, Equatable
    /// The name under which rows are stored, e.g. `task_board`.
    static var name: String { get }
    /// Rows by key.
    var rows: [String: Row] { get set }
    init()
    /// The keys of the rows that `event` may create, change or remove.
    static func keys(touchedBy event: DomainEvent) -> [String]
    /// Folds one event in place. Pure: no clock, no I/O, no randomness.
    mutating func apply(_ recorded: RecordedEvent<DomainEvent>)
}

extension Projection {
    /// The state after folding `events` in order from empty.
    public init(replaying events: some Sequence<RecordedEvent<DomainEvent>>) {
        self.init()
        for event in events { apply(event) }
    }
}
