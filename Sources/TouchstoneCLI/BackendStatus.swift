import Domain
import EventStore
import FileSignals
import Foundation
import Projections

/// Whether a backend (`touchstone serve`) serves a state directory, for the commands that should say so when none
/// does (issue 16: a clean restart is not an incident, and a submit while the backend is down says so).
enum BackendStatus: Equatable {
    /// A process holds the state directory's `backend.lock`.
    case running(pid: Int32)
    /// Nobody holds the lock. `lastStart` and `lastStop` are the newest `backend.started` and `backend.stopped` events
    /// (`nil` when there is none); a stop older than the last start means the backend died without stopping cleanly.
    case down(lastStart: Date?, lastStop: (at: Date, reason: String)?)

    static func == (lhs: BackendStatus, rhs: BackendStatus) -> Bool {
        switch (lhs, rhs) {
        case (.running(let a), .running(let b)): return a == b
        case (.down(let a, let x), .down(let b, let y)): return a == b && x?.at == y?.at && x?.reason == y?.reason
        default: return false
        }
    }

    /// Reads the lock (``PIDLockFile/holder(_:)``) and, when nobody holds it, the `backend` stream.
    static func read(stateDirectory: String, log: TouchstoneLog) async throws -> BackendStatus {
        if let pid = PIDLockFile.holder(stateDirectory + "/backend.lock") { return .running(pid: pid) }
        var lastStart: Date?
        var lastStop: (at: Date, reason: String)?
        for stored in try await log.store.read(stream: StreamName.backend) {
            switch try ReadModels.decode(stored).event {
            case .backend(.started): lastStart = stored.recordedAt
            case .backend(.stopped(let e)): lastStop = (stored.recordedAt, e.reason)
            default: break
            }
        }
        return .down(lastStart: lastStart, lastStop: lastStop)
    }

    /// One line for an operator when no backend runs (`nil` while one does). Pure.
    var downLine: String? {
        guard case .down(let lastStart, let lastStop) = self else { return nil }
        if let lastStop, lastStart.map({ $0 <= lastStop.at }) ?? true {
            return "backend down since \(Render.time(lastStop.at)) (stopped cleanly: \(lastStop.reason))"
        }
        if let lastStart {
            return "backend down: the one started at \(Render.time(lastStart)) did not stop cleanly; run `touchstone serve`"
        }
        return "backend down: no backend has served this state directory yet; run `touchstone serve`"
    }
}
