import Domain
import Projections

/// How the scheduler chooses among servers that fit a task.
public enum PackingPolicy: String, Sendable, CaseIterable {
    /// Fill servers that are already busy, keeping whole machines free for engineers (the default).
    case pack
    /// Put each task on the least busy server.
    case spread
}

/// Decides placements: pure, so it can be tested exhaustively and replayed.
public enum Scheduler {
    /// One placement decision.
    public struct Placement: Sendable, Equatable {
        public var taskID: TaskID
        public var attempt: Int
        public var serverID: ServerID
        /// GPU indices booked on that server (empty for CPU-only tasks).
        public var gpuIndices: [Int]
        /// The server stream version the decision was made against (see ``ServerRow/streamVersion``).
        public var serverVersion: Int64
    }

    struct Slot {
        var row: ServerRow
        var booked: Int
        var freeGPUs: [Int]
    }

    /// Servers that may take new tasks: attached, reachable, no detach pending, and linked (`eligible`).
    static func slots(servers: some Sequence<ServerRow>, eligible: Set<ServerID>) -> [ServerID: Slot] {
        var slots: [ServerID: Slot] = [:]
        for row in servers
        where eligible.contains(row.serverID) && row.state == .attached && row.detachRequested == nil {
            slots[row.serverID] = Slot(row: row, booked: row.booked.count, freeGPUs: row.freeGPUs)
        }
        return slots
    }

    static func slots(servers: ServerCapacity, eligible: Set<ServerID>) -> [ServerID: Slot] {
        slots(servers: servers.rows.values, eligible: eligible)
    }

    /// Queued tasks in the order they are considered: higher priority first, then oldest first.
    public static func queue(_ tasks: TaskBoard) -> [TaskRow] {
        TaskRow.schedulingOrder(tasks.rows.values.filter { $0.status == .queued })
    }

    /// Places queued tasks on servers with a free slot and enough free GPUs.
    ///
    /// Never books more than `min(maxTasks, free GPUs)` on a server (invariant 1): bookings made in this plan count
    /// against both. A task that fits nowhere does not block smaller ones behind it (backfill). Cost: O(tasks ×
    /// servers with a free slot); servers fill up and leave the scan, and the plan stops once none has a slot.
    ///
    /// - Parameters:
    ///   - queue: Queued tasks in scheduling order (``TaskRow/schedulingOrder(_:)``); other states are skipped.
    ///   - servers: Every server row.
    ///   - eligible: Servers the backend has a link to; others get nothing.
    ///   - packing: How to choose among servers that fit.
    /// - Returns: The placements, in the order they should be dispatched.
    public static func plan(
        queue: [TaskRow], servers: [ServerRow], eligible: Set<ServerID>, packing: PackingPolicy = .pack
    ) -> [Placement] {
        var open = slots(servers: servers, eligible: eligible).values
            .filter { $0.booked < $0.row.maxTasks }
            .sorted { $0.row.serverID < $1.row.serverID }
        var placements: [Placement] = []
        for task in queue where task.status == .queued {
            if open.isEmpty { break }
            var chosen: Int?
            for index in open.indices
            where open[index].freeGPUs.count >= task.gpus && PlacementConstraints.fits(task, on: open[index].row) {
                guard let best = chosen else {
                    chosen = index
                    continue
                }
                let candidate = open[index].booked
                let current = open[best].booked
                // Ties go to the lower server ID (the array is in ID order, so the first one found wins).
                switch packing {
                case .pack: if candidate > current { chosen = index }
                case .spread: if candidate < current { chosen = index }
                }
            }
            guard let index = chosen else { continue }
            let gpus = Array(open[index].freeGPUs.prefix(task.gpus))
            open[index].freeGPUs.removeFirst(task.gpus)
            open[index].booked += 1
            placements.append(
                Placement(
                    taskID: task.taskID, attempt: task.attempt + 1, serverID: open[index].row.serverID, gpuIndices: gpus,
                    serverVersion: open[index].row.streamVersion))
            if open[index].booked >= open[index].row.maxTasks { open.remove(at: index) }
        }
        return placements
    }

    /// ``plan(queue:servers:eligible:packing:)`` over whole projections (tests, `replay`).
    public static func plan(
        tasks: TaskBoard, servers: ServerCapacity, eligible: Set<ServerID>, packing: PackingPolicy = .pack
    ) -> [Placement] {
        plan(queue: queue(tasks), servers: Array(servers.rows.values), eligible: eligible, packing: packing)
    }

    /// Why a task is not running yet, in one line for `task show`.
    ///
    /// - Returns: e.g. `waiting: needs 2 GPUs; largest free is 1, on gpu-03`, or `nil` when the task is not queued.
    public static func explain(_ task: TaskRow, tasks: TaskBoard, servers: ServerCapacity) -> String? {
        guard task.status == .queued else { return nil }
        let all = servers.rows.values.sorted { $0.serverID < $1.serverID }
        if all.isEmpty { return "waiting: no server is attached" }
        let open = slots(servers: servers, eligible: Set(all.map(\.serverID))).values
            .sorted { $0.row.serverID < $1.row.serverID }
        if open.isEmpty {
            let states = all.map { "\($0.serverID) \($0.state.rawValue)" }.joined(separator: ", ")
            return "waiting: no server takes tasks now (\(states))"
        }
        let matching = open.filter { PlacementConstraints.fits(task, on: $0.row) }
        if matching.isEmpty, let first = all.compactMap({ PlacementConstraints.mismatch(task, on: $0) }).first {
            return "waiting: no server that takes tasks matches its placement (\(first))"
        }
        if task.gpus > 0 {
            let best = open.max { ($0.freeGPUs.count, $1.row.serverID.rawValue) < ($1.freeGPUs.count, $0.row.serverID.rawValue) }!
            let most = all.map(\.gpus.count).max() ?? 0
            if most < task.gpus {
                return "waiting: needs \(task.gpus) GPUs; no server has that many (largest has \(most))"
            }
            if best.freeGPUs.count < task.gpus {
                let busy = open.flatMap { slot in slot.row.foreignBusyGPUs.map { "\(slot.row.serverID)#\($0)" } }
                return "waiting: needs \(task.gpus) GPUs; largest free is \(best.freeGPUs.count), on \(best.row.serverID)"
                    + (busy.isEmpty ? "" : " (busy with other users' processes: \(busy.joined(separator: ", ")))")
            }
        }
        let withSlot = open.filter { $0.booked < $0.row.maxTasks }
        if withSlot.isEmpty {
            let usage = open.map { "\($0.row.serverID) \($0.booked)/\($0.row.maxTasks)" }.joined(separator: ", ")
            return "waiting: every server is at its task limit (\(usage))"
        }
        let ahead = queue(tasks).prefix { $0.taskID != task.taskID }.count
        return ahead == 0 ? "waiting: placed at the next scheduling pass" : "waiting: \(ahead) task(s) ahead in the queue"
    }
}
