import Domain
import Projections

/// Decides placements: pure, so it can be tested exhaustively and replayed.
public enum Scheduler {
    /// One placement decision.
    public struct Placement: Sendable, Equatable {
        public var taskID: TaskID
        public var attempt: Int
        public var serverID: ServerID
    }

    /// Places queued tasks, oldest first, on servers with free slots.
    ///
    /// Never books past a server's `maxTasks` (invariant 1): bookings made in this plan count against it.
    /// Packing: among servers with a free slot, the one with most tasks booked is chosen (keeping whole machines free
    /// for engineers), ties broken by name.
    ///
    /// - Parameters:
    ///   - tasks: The task board.
    ///   - servers: Server capacity.
    ///   - eligible: Servers the backend can reach now; others get nothing.
    /// - Returns: The placements, in the order they should be dispatched.
    public static func plan(tasks: TaskBoard, servers: ServerCapacity, eligible: Set<ServerID>) -> [Placement] {
        var booked: [ServerID: Int] = [:]
        var limits: [ServerID: Int] = [:]
        for row in servers.rows.values where eligible.contains(row.serverID) && row.state == .attached {
            booked[row.serverID] = row.booked.count
            limits[row.serverID] = row.maxTasks
        }
        let queued = tasks.rows.values.filter { $0.status == .queued }
            .sorted { ($0.submittedAt, $0.taskID) < ($1.submittedAt, $1.taskID) }
        var placements: [Placement] = []
        for task in queued {
            let candidates = booked.keys.filter { booked[$0]! < limits[$0]! }
            guard let server = candidates.max(by: { (booked[$0]!, $1.rawValue) < (booked[$1]!, $0.rawValue) }) else {
                break
            }
            booked[server]! += 1
            placements.append(Placement(taskID: task.taskID, attempt: task.attempt + 1, serverID: server))
        }
        return placements
    }
}
