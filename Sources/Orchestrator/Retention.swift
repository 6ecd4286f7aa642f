import Domain
import EventStore
import Foundation
import Logging
import Projections
import ServiceLifecycle

/// The retention policy of the backend's task files (issue 15, docs/operations.md): the input store, artifacts and
/// log mirrors of tasks that ended more than ``days`` days ago are removed by `touchstone gc`. The event log itself
/// is not touched (archiving it is separate).
public struct RetentionPolicy: Sendable, Equatable {
    /// Days a task's files are kept after it ended. Default 30.
    public var days: Int
    /// An input file younger than this is never removed, even when no task names it yet: `task submit` copies its
    /// inputs in before it appends the task. Default 1 hour.
    public var inputGrace: TimeInterval

    public init(days: Int = 30, inputGrace: TimeInterval = 3600) {
        self.days = days
        self.inputGrace = inputGrace
    }
}

/// Decides what `touchstone gc` removes. Pure: the I/O (listing the store, reading the log, removing) is the
/// caller's.
public enum Retention {
    /// What one task tells the rule.
    public struct TaskFacts: Sendable, Equatable {
        public var taskID: TaskID
        /// When it ended for good; `nil` while it is not terminal.
        public var endedAt: Date?
        /// The SHA-256 of each input it names.
        public var inputs: [String]

        public init(taskID: TaskID, endedAt: Date?, inputs: [String]) {
            self.taskID = taskID
            self.endedAt = endedAt
            self.inputs = inputs
        }
    }

    /// What is in the store.
    public struct Listing: Sendable, Equatable {
        /// Task IDs with a directory under `artifacts/`.
        public var artifactTasks: [String]
        /// Task IDs with a directory under `logs/`.
        public var logTasks: [String]
        /// `inputs/<sha256>` files with their modification times.
        public var inputs: [String: Date]

        public init(artifactTasks: [String], logTasks: [String], inputs: [String: Date]) {
            self.artifactTasks = artifactTasks
            self.logTasks = logTasks
            self.inputs = inputs
        }
    }

    /// The paths to remove, relative to the state directory, with their kind (sizes are the caller's):
    /// - `artifacts/<task>` and `logs/<task>` of a task that ended before `now − days`;
    /// - `inputs/<sha256>` that no task still needs (one not ended, or ended within the policy's days), and that is
    ///   older than the input grace.
    /// A directory of a task the log does not know is kept (it is not ours to judge), and so is anything else.
    public static func plan(
        tasks: [TaskFacts], listing: Listing, policy: RetentionPolicy, now: Date
    ) -> [(kind: String, path: String)] {
        let cutoff = now.addingTimeInterval(-Double(policy.days) * 86_400)
        var expired: Set<String> = []
        var needed: Set<String> = []
        for task in tasks {
            if let ended = task.endedAt, ended < cutoff {
                expired.insert(task.taskID.rawValue)
            } else {
                needed.formUnion(task.inputs)
            }
        }
        var out: [(kind: String, path: String)] = []
        for task in listing.artifactTasks.sorted() where expired.contains(task) { out.append(("artifacts", "artifacts/" + task)) }
        for task in listing.logTasks.sorted() where expired.contains(task) { out.append(("logs", "logs/" + task)) }
        for (sha, modified) in listing.inputs.sorted(by: { $0.key < $1.key })
        where !needed.contains(sha) && modified < now.addingTimeInterval(-policy.inputGrace) {
            out.append(("input", "inputs/" + sha))
        }
        return out
    }

    /// Applies the policy to a state directory: lists it, reads every task's end and inputs from the log, removes
    /// what ``plan(tasks:listing:policy:now:)`` says, and appends `maintenance.gc-completed` with each removal and
    /// the bytes freed (also when nothing was removed).
    ///
    /// - Parameter dryRun: Only say what would be removed; nothing is removed or recorded.
    /// - Returns: The removals.
    /// - Throws: ``EventStoreError`` when the log cannot be read or appended to; a file-system error.
    public static func collect(
        stateDirectory: String, log: TouchstoneLog, policy: RetentionPolicy, now: Date = Date(), actor: String,
        dryRun: Bool = false
    ) async throws -> GarbageCollected {
        let board = try await log.readModel(TaskBoard.self)
        var facts: [TaskFacts] = []
        for row in board.rows.values {
            var inputs: [String] = []
            if let first = try await log.store.read(stream: StreamName.task(row.taskID)).first,
                case .taskSubmitted(let submitted) = try ReadModels.decode(first).event
            {
                inputs = submitted.spec.inputs.map(\.sha256)
            }
            let endedAt = row.status.isTerminal ? row.finishedAt ?? row.submittedAt : nil
            facts.append(TaskFacts(taskID: row.taskID, endedAt: endedAt, inputs: inputs))
        }
        let files = FileManager.default
        func entries(_ directory: String) -> [String] {
            ((try? files.contentsOfDirectory(atPath: stateDirectory + "/" + directory)) ?? []).filter { !$0.hasPrefix(".") }
        }
        var inputs: [String: Date] = [:]
        for name in entries("inputs") {
            let attributes = try? files.attributesOfItem(atPath: stateDirectory + "/inputs/" + name)
            inputs[name] = (attributes?[.modificationDate] as? Date) ?? now
        }
        let listing = Listing(artifactTasks: entries("artifacts"), logTasks: entries("logs"), inputs: inputs)
        var removed: [GarbageCollected.Removal] = []
        for (kind, path) in plan(tasks: facts, listing: listing, policy: policy, now: now) {
            let full = stateDirectory + "/" + path
            let bytes = size(of: full)
            if !dryRun { try files.removeItem(atPath: full) }
            removed.append(.init(kind: kind, path: path, bytes: bytes))
        }
        let event = GarbageCollected(retentionDays: policy.days, removed: removed)
        if !dryRun { try await log.append(.garbageCollected(event), metadata: EventMetadata(actor: actor)) }
        return event
    }

    /// The bytes of a file, or of every file under a directory.
    static func size(of path: String) -> Int64 {
        let files = FileManager.default
        var isDirectory: ObjCBool = false
        guard files.fileExists(atPath: path, isDirectory: &isDirectory) else { return 0 }
        guard isDirectory.boolValue else {
            return ((try? files.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
        }
        var total: Int64 = 0
        let enumerator = files.enumerator(atPath: path)
        while let name = enumerator?.nextObject() as? String {
            guard let attributes = try? files.attributesOfItem(atPath: path + "/" + name),
                attributes[.type] as? FileAttributeType == .typeRegular
            else { continue }
            total += (attributes[.size] as? NSNumber)?.int64Value ?? 0
        }
        return total
    }
}

/// `serve`'s own runs of the retention policy: one every `interval` (a day by default), the first one an interval
/// after the start, so that a backend restarted often still collects and a short-lived one never does.
public struct RetentionService<C: Clock<Duration>>: Service {
    let stateDirectory: String
    let log: TouchstoneLog
    let policy: RetentionPolicy
    let interval: Duration
    let clock: C
    let logger: Logger

    /// - Parameters:
    ///   - stateDirectory: The backend's state directory.
    ///   - log: The event log, read for the tasks and appended to for each run.
    ///   - policy: What to keep.
    ///   - interval: The time between runs.
    ///   - clock: The clock the interval is measured on (tests pass a manual one).
    ///   - logger: The backend's logger.
    public init(
        stateDirectory: String, log: TouchstoneLog, policy: RetentionPolicy, interval: Duration, clock: C,
        logger: Logger
    ) {
        self.stateDirectory = stateDirectory
        self.log = log
        self.policy = policy
        self.interval = interval
        self.clock = clock
        self.logger = logger
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await clock.sleep(for: interval)
                } catch {
                    return  // cancelled: graceful shutdown
                }
                do {
                    let run = try await Retention.collect(
                        stateDirectory: stateDirectory, log: log, policy: policy, actor: "backend")
                    logger.info(
                        "retention applied",
                        metadata: ["removed": "\(run.removed.count)", "bytes.freed": "\(run.bytesFreed)"])
                } catch is CancellationError {
                    return
                } catch {
                    // The next run tries again; a failed run removed at most part of what it planned, and said so.
                    logger.error("retention run failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

extension Retention {
    /// The gc run that removed `path` (relative to the state directory, e.g. `logs/tsk-…`), if one did: when, and
    /// under which retention. For the operator commands that find a task's file gone.
    ///
    /// - Throws: ``EventStoreError`` when the log cannot be read.
    public static func removal(of path: String, in log: TouchstoneLog) async throws -> (at: Date, retentionDays: Int)? {
        for stored in try await log.store.read(stream: StreamName.maintenance).reversed() {
            if case .garbageCollected(let run) = try ReadModels.decode(stored).event,
                run.removed.contains(where: { $0.path == path })
            {
                return (stored.recordedAt, run.retentionDays)
            }
        }
        return nil
    }

    /// "`subject` removed by `touchstone gc` on DATE (retention N days)", or `nil` when no run removed `path`.
    ///
    /// - Parameter subject: What was removed, with its verb: "the log mirror of tsk-… was".
    public static func removalNotice(_ subject: String, path: String, in log: TouchstoneLog) async throws -> String? {
        guard let removal = try await removal(of: path, in: log) else { return nil }
        return "\(subject) removed by `touchstone gc` on \(removal.at.formatted(.iso8601)) "
            + "(retention \(removal.retentionDays) days)"
    }
}
