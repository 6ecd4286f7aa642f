import Domain
import EventStore
import Foundation
import Orchestrator
import Projections

/// Shared steps of the server lifecycle commands.
enum ServerLifecycleSupport {
    /// The server's row, or a one-line error naming it.
    static func row(_ name: String, in log: TouchstoneLog) async throws -> ServerRow {
        let servers = try await log.readModel(ServerCapacity.self)
        guard let id = ServerID(rawValue: name), let row = servers[id] else {
            throw CLIError("unknown server \(name.debugDescription): see `touchstone server list`")
        }
        return row
    }

    /// Appends events about a server, expecting the server stream at the version just read, so that a concurrent
    /// booking or lifecycle change is never overwritten; retries a few times on a conflict.
    ///
    /// - Parameter decide: Given the current row, the events to append (or an error to refuse).
    static func append(
        to name: String, in log: TouchstoneLog, actor: String,
        decide: (ServerRow) throws -> [DomainEvent]
    ) async throws -> ServerRow {
        for _ in 0..<5 {
            let row = try await row(name, in: log)
            let events = try decide(row)
            do {
                try await log.append(
                    events.map { .init($0, metadata: EventMetadata(actor: actor)) },
                    conditions: [StreamName.server(row.serverID): row.streamVersion])
                return try await self.row(name, in: log)
            } catch let error as EventStoreError where error.code == .wrongExpectedVersion {
                continue
            } catch let error as EventStoreError {
                throw CLIError("\(error)")
            }
        }
        throw CLIError("server \(name) kept changing while this command ran; try again")
    }

    /// The server decider (``Decide/server(_:given:now:)``), its refusal as a one-line CLI error.
    static func decide(_ command: Decide.ServerCommand, given row: ServerRow) throws -> [DomainEvent] {
        do {
            return try Decide.server(command, given: row)
        } catch let rejection as Rejection {
            throw CLIError(rejection.message)
        }
    }

    /// Parses `90s`, `10m`, `2h`, `1d` or a bare number of seconds.
    static func seconds(_ text: String) -> Int? {
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        if let last = text.last, let unit = units[last], let value = Int(text.dropLast()), value >= 0 {
            return value * unit
        }
        return Int(text).flatMap { $0 >= 0 ? $0 : nil }
    }
}
