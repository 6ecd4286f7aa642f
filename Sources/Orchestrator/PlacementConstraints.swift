import Domain
import Projections

/// Where a task may run, apart from capacity: its pin (`task submit --server NAME`) and its constraints
/// (`--constraint label=value`, matched against the labels of the server's last `server attach --label`).
///
/// Pure; the scheduler filters candidate servers with ``fits(_:on:)`` before it weighs capacity.
public enum PlacementConstraints {
    /// Whether the task may be placed on the server: it is pinned to no server or to this one, and the server carries
    /// every constrained label with exactly the constrained value.
    public static func fits(_ task: TaskRow, on server: ServerRow) -> Bool {
        mismatch(task, on: server) == nil
    }

    /// Why the task may not be placed on the server (one line naming the pin or the first unmet constraint, labels
    /// in sorted order), `nil` when it may.
    public static func mismatch(_ task: TaskRow, on server: ServerRow) -> String? {
        if let pinned = task.pinnedServer, pinned != server.serverID {
            return "pinned to \(pinned), not \(server.serverID)"
        }
        for (label, value) in (task.constraints ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard let actual = server.labels?[label] else {
                return "needs \(label)=\(value); \(server.serverID) has no label \(label)"
            }
            guard actual == value else { return "needs \(label)=\(value); \(server.serverID) has \(label)=\(actual)" }
        }
        return nil
    }
}
