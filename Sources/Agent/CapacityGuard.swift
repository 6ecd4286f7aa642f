import Domain
import Wire

/// The agent's own capacity rule (issue 17 part 1, defence in depth): the backend's read model is not the only guard.
/// A start is refused when it would make more attempts run here than the last known `max_tasks`, or when it asks for
/// a GPU that an attempt here holds. Pure: the agent's state goes in, a verdict comes out.
public enum CapacityGuard {
    /// The verdict on one start.
    public enum Verdict: Sendable, Equatable {
        case admit
        /// Refused; the message is one line naming the limit and the backend's view.
        case refuse(String)
    }

    /// The view to keep as the last known capacity: the one decided on the higher server stream version (a resend of
    /// an older booking never lowers what the agent knows).
    public static func newest(_ known: CapacityView?, _ incoming: CapacityView?) -> CapacityView? {
        guard let incoming else { return known }
        guard let known else { return incoming }
        return incoming.serverVersion >= known.serverVersion ? incoming : known
    }

    /// Whether a start may launch.
    ///
    /// - Parameters:
    ///   - gpus: The GPU indices the start asks for.
    ///   - known: The last known capacity (``newest(_:_:)`` of every start seen, this one's included); `nil`: no
    ///     limit is known, only the GPU rule applies.
    ///   - held: The attempts that run or are being launched here, with the GPU indices each holds (the start itself
    ///     excluded).
    public static func admit(gpus: [Int], known: CapacityView?, held: [TaskAttempt: [Int]]) -> Verdict {
        if let known, held.count >= known.maxTasks {
            return .refuse(
                "\(held.count) attempt(s) run or start here and the last known max_tasks is \(known.maxTasks) "
                    + "(the backend's view at server version \(known.serverVersion), booked GPUs "
                    + "\(known.bookedGPUs.sorted())); not started")
        }
        let holders = held.filter { !Set($0.value).isDisjoint(with: gpus) }
        if let (holder, indices) = holders.min(by: { $0.key < $1.key }) {
            let reused = Set(indices).intersection(gpus).sorted()
            return .refuse(
                "GPU \(reused.map(String.init).joined(separator: ",")) is held by \(holder) here"
                    + (known.map { " (the backend's view at server version \($0.serverVersion) books GPUs \($0.bookedGPUs.sorted()))" } ?? "")
                    + "; not started")
        }
        return .admit
    }

    /// The GPU indices an attempt holds, from its `touchstone.gpus` label (`0,1`; absent: none).
    public static func gpus(inLabels labels: [String: String]) -> [Int] {
        (labels[label] ?? "").split(separator: ",").compactMap { Int($0) }
    }

    /// The label that keeps an attempt's GPU indices, so that an adopted attempt still holds its GPUs.
    public static let label = "touchstone.gpus"
}
