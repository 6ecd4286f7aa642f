/// Makes and opens named queues, whatever the transport: the backend, the agent and `touchstone server attach` use
/// this and never name ``EmbeddedQueueStore`` or ``SQSClient``.
public protocol QueueProvider: Sendable {
    /// Creates a FIFO queue, or does nothing when it exists with the same attributes.
    ///
    /// On SQS this also creates the queue's dead-letter queue (`…-dlq.fifo`) and its redrive policy; the embedded
    /// queue has no dead-letter queues.
    ///
    /// - Parameters:
    ///   - name: A FIFO queue name: 1–80 letters, digits, `-` and `_`, ending in `.fifo`.
    ///   - attributes: The visibility timeout and maximum message size.
    /// - Throws: ``QueueError`` `.invalidParameter`, `.queueNameExists` (exists with other attributes), and the
    ///   transport's own (`.storage`; `.accessDenied`, `.connectionFailed`, …).
    func createQueueIfNeeded(named name: String, attributes: QueueAttributes) async throws

    /// Opens an existing queue.
    ///
    /// - Parameter name: The queue's name.
    /// - Returns: The queue.
    /// - Throws: ``QueueError`` `.queueDoesNotExist`, and the transport's own errors.
    func openQueue(named name: String) async throws -> any MessageQueue

    /// The operations made through every queue this provider opened, by kind.
    var operationCounts: QueueOperationCounts { get }
}

extension EmbeddedQueueStore: QueueProvider {
    /// ``createQueue(name:attributes:)``, which is idempotent already.
    ///
    /// - Throws: ``QueueError`` as ``createQueue(name:attributes:)``.
    public func createQueueIfNeeded(named name: String, attributes: QueueAttributes) async throws {
        try createQueue(name: name, attributes: attributes)
    }

    /// ``queue(named:)``.
    ///
    /// - Throws: ``QueueError`` `.queueDoesNotExist`, `.storage`.
    public func openQueue(named name: String) async throws -> any MessageQueue {
        try queue(named: name)
    }
}

extension SQSClient: QueueProvider {
    /// ``createQueue(named:attributes:deadLetterQueue:)`` with its dead-letter queue.
    ///
    /// - Throws: ``QueueError`` as ``createQueue(named:attributes:deadLetterQueue:)``.
    public func createQueueIfNeeded(named name: String, attributes: QueueAttributes) async throws {
        try await createQueue(named: name, attributes: attributes, deadLetterQueue: true)
    }

    /// ``queue(named:)``.
    ///
    /// - Throws: ``QueueError`` `.queueDoesNotExist`, and those of any SQS call.
    public func openQueue(named name: String) async throws -> any MessageQueue {
        try await queue(named: name)
    }
}
