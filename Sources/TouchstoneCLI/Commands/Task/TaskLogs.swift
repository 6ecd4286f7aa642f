import ArgumentParser
import Domain
import EventStore
import FileSignals
import Foundation
import Orchestrator
import Projections
import Wire

/// `touchstone task logs ID [--follow] [--tail N] [--stderr]`: the task's stdout (or stderr).
///
/// The backend mirrors each attempt's `stdout.log` / `stderr.log` from its agent over the transfer channel
/// (`readLog`, every ``TransferSettings/pollInterval`` while the task runs, once more to the end after it ended) into
/// `logs/<task>/<attempt>/` of the state directory; this command reads the mirror, so it works while the task runs,
/// after it ended, and while its agent is unreachable (up to what was mirrored).
struct TaskLogs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Print a task's stdout (or stderr), optionally following it until it ends.")

    @Argument(help: "The task ID (tsk-…), or any unique prefix of it.")
    var id: String

    @Flag(help: "Keep printing new output until the task ends.")
    var follow = false

    @Option(help: "Only the last N lines.")
    var tail: Int?

    @Flag(help: "Print stderr instead of stdout.")
    var stderr = false

    @Option(help: "The attempt (default: the current one).")
    var attempt: Int?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let tail, tail < 0 { throw ValidationError("--tail must be 0 or more") }
    }

    func run() async throws {
        let log = try global.openLog()
        let taskID = try await log.resolveTask(id)
        guard let row = try await log.readModel(TaskBoard.self)[taskID] else {
            throw CLIError("unknown task \(id.debugDescription): see `touchstone task list`")
        }
        if let attempt, !(1...max(row.attempt, 0)).contains(attempt) {
            throw CLIError(
                "task \(taskID) has no attempt \(attempt)"
                    + (row.attempt == 0 ? ": it has not run yet" : ": its attempts are 1–\(row.attempt)"))
        }
        let store = ArtifactStore(stateDirectory: global.resolvedStateDir)
        let key = TaskAttempt(taskID: taskID, attempt: attempt ?? max(row.attempt, 1))
        let path = store.logPath(key, stderr ? .stderr : .stdout)
        var offset: Int64 = 0
        if let tail {
            offset = Self.offsetOfLast(lines: tail, in: path)
        }
        offset = Self.printFrom(path, offset: offset)
        guard follow else { return }
        var endedAt: ContinuousClock.Instant?
        // New bytes in the mirror wake the loop at once (inotify on its directory); the task's state and the
        // mirror's completion marker are looked at again at least every second.
        let changes = ChangeSignal()
        var watcher: DatabaseFileWatcher?
        defer { watcher?.stop() }
        while true {
            let generation = changes.generation
            if watcher == nil, FileManager.default.fileExists(atPath: (path as NSString).deletingLastPathComponent) {
                watcher = try? DatabaseFileWatcher(databasePath: path, signal: changes)
            }
            let current = try await log.readModel(TaskBoard.self)[taskID]
            // A queued task has attempt 0 until its first dispatch; a later attempt means this one ended.
            let ended = current.map { $0.status.isTerminal || $0.attempt > key.attempt } ?? true
            // Once the task ended, the backend mirrors the logs to their end and leaves a marker.
            let complete = FileManager.default.fileExists(atPath: store.logCompleteMarker(key))
            offset = Self.printFrom(path, offset: offset)
            let neverStarted = current.map { $0.attempt == key.attempt && $0.startedAt == nil } ?? true
            if ended && endedAt == nil { endedAt = .now }
            // The mirror's `.complete` marker normally follows the end within a poll interval; an attempt that never
            // ran has none, so give up waiting for it after a while.
            let waitedLong = endedAt.map { ContinuousClock.now - $0 > .seconds(15) } ?? false
            if ended && (complete || neverStarted || waitedLong) { return }
            await changes.wait(after: generation, timeout: .seconds(1))
        }
    }

    /// Prints the file from `offset` to its end, streamed; returns the new offset.
    static func printFrom(_ path: String, offset: Int64) -> Int64 {
        guard let handle = FileHandle(forReadingAtPath: path) else { return offset }
        defer { try? handle.close() }
        var position = offset
        do {
            try handle.seek(toOffset: UInt64(offset))
            while let data = try handle.read(upToCount: FileChunking.streamBufferSize), !data.isEmpty {
                FileHandle.standardOutput.write(data)
                position += Int64(data.count)
            }
        } catch {
            return position
        }
        return position
    }

    /// The offset where the last `lines` lines of a file begin, reading backwards in blocks.
    static func offsetOfLast(lines: Int, in path: String) -> Int64 {
        guard let handle = FileHandle(forReadingAtPath: path), let size = try? handle.seekToEnd() else { return 0 }
        defer { try? handle.close() }
        if lines == 0 { return Int64(size) }
        var end = Int64(size)
        var newlines = 0
        // A final newline ends the last line; it does not start a new one.
        var skipLast = true
        let block: Int64 = 64 * 1024
        while end > 0 {
            let start = max(0, end - block)
            guard (try? handle.seek(toOffset: UInt64(start))) != nil,
                let data = try? handle.read(upToCount: Int(end - start))
            else { return 0 }
            for index in stride(from: data.count - 1, through: 0, by: -1) where data[data.startIndex + index] == 0x0A {
                if skipLast && start + Int64(index) == Int64(size) - 1 {
                    skipLast = false
                    continue
                }
                newlines += 1
                if newlines == lines { return start + Int64(index) + 1 }
            }
            skipLast = false
            end = start
        }
        return 0
    }
}
