import Domain
import EventStore
import Foundation
import GRDB

/// The backend's typed reads of the stored read models: only the rows a decision needs, never a whole projection.
///
/// Live and queued tasks come from the indexed side tables (`tasks_by_server`, `task_queue`), so no read grows with the
/// history.
extension TouchstoneLog {
    /// Every server row (a fleet has hundreds at most).
    public func serverRows() async throws(EventStoreError) -> [ServerRow] {
        try await store.read { db in
            let decoder = DomainEventCodec.makeDecoder()
            return try Data.fetchAll(
                db, sql: "SELECT row FROM read_model_rows WHERE projection = ?", arguments: [ServerCapacity.name]
            ).map { try decoder.decode(ServerRow.self, from: $0) }
        }
    }

    /// One server's row.
    public func serverRow(_ id: ServerID) async throws(EventStoreError) -> ServerRow? {
        try await store.read { db in try ReadModels.row(ServerCapacity.self, key: id.rawValue, in: db) }
    }

    /// The rows of these tasks (missing ones are left out).
    public func taskRows(_ ids: some Collection<TaskID> & Sendable) async throws(EventStoreError) -> [TaskID: TaskRow] {
        try await store.read { db in
            var rows: [TaskID: TaskRow] = [:]
            for id in ids {
                if let row = try ReadModels.row(TaskBoard.self, key: id.rawValue, in: db) { rows[id] = row }
            }
            return rows
        }
    }

    /// The tasks that ended on a server after `date` (a link's output collection after a restart); filtered in
    /// SQLite, so only those rows are decoded.
    public func taskRows(endedOn server: ServerID, after date: Date) async throws(EventStoreError) -> [TaskRow] {
        try await store.read { db in
            let decoder = DomainEventCodec.makeDecoder()
            return try Data.fetchAll(
                db,
                sql: """
                    SELECT row FROM read_model_rows
                    WHERE projection = ? AND json_extract(CAST(row AS TEXT), '$.serverID') = ?
                      AND json_extract(CAST(row AS TEXT), '$.finishedAt') > ?
                    """,
                arguments: [TaskBoard.name, server.rawValue, Int64(date.timeIntervalSince1970 * 1000)]
            ).map { try decoder.decode(TaskRow.self, from: $0) }
        }
    }

    /// The channel rows of one server, by channel description (`gpu-01/0`).
    public func channelRows(of server: ServerRow) async throws(EventStoreError) -> [String: ChannelRow] {
        try await store.read { db in
            var rows: [String: ChannelRow] = [:]
            for index in 0..<server.channels {
                let key = ChannelID(server: server.serverID, index: index).description
                if let row = try ReadModels.row(ChannelSync.self, key: key, in: db) { rows[key] = row }
            }
            return rows
        }
    }
}

extension TaskRow {
    /// Queued tasks in the order they are considered: higher priority first, then oldest first, then by ID.
    public static func schedulingOrder(_ rows: [TaskRow]) -> [TaskRow] {
        rows.sorted { ($1.priority, $0.submittedAt, $0.taskID) < ($0.priority, $1.submittedAt, $1.taskID) }
    }
}
