import Synchronization

/// A generation counter that waiters park on: "something in the watched database may have changed".
///
/// Bumped by the store's own writes (after commit) and by its ``DatabaseFileWatcher`` when another process or
/// another store instance writes the file. A waiter reads ``generation`` *before* checking the queue, then waits for
/// the generation to move past what it read, so a change between its check and its wait is never lost.
public final class ChangeSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var closed = false
        var nextWaiterID: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Waiters whose task was cancelled before they parked their continuation.
        var cancelled: Set<UInt64> = []
    }

    private let state = Mutex(State())

    public init() {}

    /// The current generation; it only grows.
    public var generation: UInt64 { state.withLock { $0.generation } }

    /// True once ``close()`` ran.
    public var isClosed: Bool { state.withLock { $0.closed } }

    /// Moves to the next generation and wakes every waiter.
    public func bump() {
        let waiters = state.withLock { state in
            state.generation &+= 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Wakes every waiter for good: later waits return at once.
    public func close() {
        state.withLock { $0.closed = true }
        bump()
    }

    /// Waits until the generation differs from `seen`, `timeout` passes, or the task is cancelled, whichever is
    /// first. Suspends only: no thread is blocked.
    public func wait(after seen: UInt64, timeout: Duration) async {
        if timeout <= .zero { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForGeneration(after: seen) }
            group.addTask { try? await Task.sleep(for: timeout) }
            _ = await group.next()
            group.cancelAll()
        }
    }

    private func waitForGeneration(after seen: UInt64) async {
        let id = state.withLock { state in
            state.nextWaiterID &+= 1
            return state.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let parked = state.withLock { state in
                    if state.cancelled.remove(id) != nil || state.closed || state.generation != seen { return false }
                    state.waiters[id] = continuation
                    return true
                }
                if !parked { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
                if let continuation = state.waiters.removeValue(forKey: id) { return continuation }
                state.cancelled.insert(id)
                return nil
            }
            continuation?.resume()
        }
        // A cancellation that raced with a wake-up left its mark; drop it.
        state.withLock { _ = $0.cancelled.remove(id) }
    }
}
