import Foundation
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

    /// Why a task is not running yet, in one line for `task show`: the real blocker on the servers it may use
    /// (its pin and constraints decide which), or its queue position when one of them has room.
    ///
    /// - Returns: e.g. `waiting: gpu-01 is full (2/2 tasks)`, `waiting: needs 4 GPUs; gpu-01: 3 of 4 free (GPU 3
    ///   busy with another user's process)`, `waiting: 3 task(s) ahead in the queue`; `nil` when the task is not
    ///   queued. Pure.
    public static func explain(_ task: TaskRow, tasks: TaskBoard, servers: ServerCapacity) -> String? {
        guard task.status == .queued else { return nil }
        let all = servers.rows.values.sorted { $0.serverID < $1.serverID }
        if all.isEmpty { return "waiting: no server is attached" }
        if let pinned = task.pinnedServer, servers[pinned] == nil {
            return "waiting: pinned to \(pinned), which is not attached"
        }
        let candidates = all.filter { PlacementConstraints.fits(task, on: $0) }
        if candidates.isEmpty, let first = all.compactMap({ PlacementConstraints.mismatch(task, on: $0) }).first {
            return "waiting: no server matches its placement (\(first))"
        }
        let blockers = candidates.map { blocker(task, on: $0) }
        if blockers.contains(where: { $0 == nil }) {
            let ahead = queue(tasks).prefix { $0.taskID != task.taskID }.count
            return ahead == 0 ? "waiting: placed at the next scheduling pass" : "waiting: \(ahead) task(s) ahead in the queue"
        }
        var reasons = blockers.compactMap { $0 }
        if task.gpus > 0, candidates.allSatisfy({ $0.gpus.count < task.gpus }) {
            let largest = candidates.map(\.gpus.count).max() ?? 0
            return "waiting: needs \(task.gpus) GPUs; no server it may use has that many (the largest has \(largest))"
        }
        let shown = reasons.prefix(3).joined(separator: "; ")
        reasons.removeFirst(min(3, reasons.count))
        return "waiting: " + shown + (reasons.isEmpty ? "" : "; and \(reasons.count) more server(s)")
    }

    /// What keeps one server the task may use from taking it now; `nil` when it has room. Pure.
    static func blocker(_ task: TaskRow, on row: ServerRow) -> String? {
        let name = row.serverID.rawValue
        if row.detached || row.state == .detached { return "\(name) is detached" }
        if row.detachRequested != nil { return "\(name) is being detached" }
        if row.state == .unreachable || !row.reachable {
            return "\(name) is unreachable" + (row.unreachableSince.map { " since \(iso($0))" } ?? "")
        }
        if let unhealthy = row.unhealthy { return "\(name) is unhealthy (\(unhealthy))" }
        if row.state == .draining || row.maxTasks == 0 {
            return row.drain == nil ? "\(name) takes no tasks (max tasks 0)" : "\(name) is draining"
        }
        if row.lastContact == nil {
            return "\(name) has not been heard from: is its agent running (touchstone-agent --server \(name))?"
        }
        if row.booked.count >= row.maxTasks { return "\(name) is full (\(row.booked.count)/\(row.maxTasks) tasks)" }
        if task.gpus > 0 {
            if row.gpus.count < task.gpus {
                return "\(name) has \(row.gpus.count) GPU(s), the task needs \(task.gpus)"
            }
            let free = row.freeGPUs.count
            if free < task.gpus {
                let foreign = row.foreignBusyGPUs
                let ours = row.gpuBookings.count
                var detail: [String] = []
                if ours > 0 { detail.append("\(ours) booked by Touchstone tasks") }
                if !foreign.isEmpty {
                    detail.append(
                        "GPU \(foreign.map(String.init).joined(separator: ", ")) busy with another user's process"
                            + (foreign.count == 1 ? "" : "es"))
                }
                return "needs \(task.gpus) GPUs; \(name): \(free) of \(row.gpus.count) free"
                    + (detail.isEmpty ? "" : " (\(detail.joined(separator: "; ")))")
            }
        }
        return nil
    }

    private static func iso(_ date: Date) -> String {
        ISO8601DateFormatter().string(from: date)
    }
}
