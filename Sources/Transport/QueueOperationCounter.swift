import Synchronization

/// A kind of queue operation, as counted by ``QueueOperationCounter``.
public enum QueueOperation: Sendable, Hashable, CaseIterable {
    /// `send` or `sendBatch` (`SendMessage`, `SendMessageBatch`).
    case send
    /// `receive` (`ReceiveMessage`), however long it waited.
    case receive
    /// `delete` or `deleteBatch` (`DeleteMessage`, `DeleteMessageBatch`).
    case delete
    /// `changeVisibility` (`ChangeMessageVisibility`, `ChangeMessageVisibilityBatch`).
    case changeVisibility
    /// Anything else: counts, queue administration (`GetQueueAttributes`, `GetQueueUrl`, `CreateQueue`, …).
    case other

    /// The kind of an SQS action, by its name in the JSON protocol's `X-Amz-Target` (`AmazonSQS.<Action>`).
    ///
    /// - Parameter action: For example `ReceiveMessage`.
    /// - Returns: The kind; `.other` for an action that is not a message operation.
    public static func of(sqsAction action: String) -> QueueOperation {
        switch action {
        case "SendMessage", "SendMessageBatch": .send
        case "ReceiveMessage": .receive
        case "DeleteMessage", "DeleteMessageBatch": .delete
        case "ChangeMessageVisibility", "ChangeMessageVisibilityBatch": .changeVisibility
        default: .other
        }
    }
}

/// How many operations of each kind a queue handle or a provider made, since it was made.
public struct QueueOperationCounts: Sendable, Hashable, CustomStringConvertible {
    public var sends = 0
    public var receives = 0
    public var deletes = 0
    public var visibilityChanges = 0
    public var other = 0

    public init(sends: Int = 0, receives: Int = 0, deletes: Int = 0, visibilityChanges: Int = 0, other: Int = 0) {
        self.sends = sends
        self.receives = receives
        self.deletes = deletes
        self.visibilityChanges = visibilityChanges
        self.other = other
    }

    /// Every operation counted.
    public var total: Int { sends + receives + deletes + visibilityChanges + other }

    public var description: String {
        "sends \(sends), receives \(receives), deletes \(deletes), visibility changes \(visibilityChanges), "
            + "other \(other)"
    }
}

/// Lock-free counters of queue operations by kind; read them with ``counts``.
///
/// ``EmbeddedQueue`` counts its calls; ``SQSQueue`` and ``SQSClient`` count HTTP requests sent to SQS (each retry is
/// a request, as SQS bills it). Benchmarks read them to count the operations an idle server costs.
public final class QueueOperationCounter: Sendable {
    private let sends = Atomic<Int>(0)
    private let receives = Atomic<Int>(0)
    private let deletes = Atomic<Int>(0)
    private let visibilityChanges = Atomic<Int>(0)
    private let other = Atomic<Int>(0)

    public init() {}

    /// Counts one operation.
    public func record(_ operation: QueueOperation) {
        switch operation {
        case .send: sends.add(1, ordering: .relaxed)
        case .receive: receives.add(1, ordering: .relaxed)
        case .delete: deletes.add(1, ordering: .relaxed)
        case .changeVisibility: visibilityChanges.add(1, ordering: .relaxed)
        case .other: other.add(1, ordering: .relaxed)
        }
    }

    /// The counts so far.
    public var counts: QueueOperationCounts {
        QueueOperationCounts(
            sends: sends.load(ordering: .relaxed), receives: receives.load(ordering: .relaxed),
            deletes: deletes.load(ordering: .relaxed), visibilityChanges: visibilityChanges.load(ordering: .relaxed),
            other: other.load(ordering: .relaxed))
    }
}
