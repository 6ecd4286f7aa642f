import ArgumentParser
import Domain
import EventStore
import Foundation
import Orchestrator
import Projections

/// `touchstone task artifacts ID`: the outputs collected into the artifact store.
struct TaskArtifacts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "artifacts", abstract: "List a task's collected output files (name, size, SHA-256).")

    @Argument(help: "The task ID (tsk-…), or any unique prefix of it.")
    var id: String

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let log = try global.openLog()
        let taskID = try await log.resolveTask(id)
        guard try await log.readModel(TaskBoard.self)[taskID] != nil else {
            throw CLIError("unknown task \(id.debugDescription): see `touchstone task list`")
        }
        let artifacts = try await ArtifactStore.artifacts(of: taskID, in: log)
        // Declared outputs that were not collected are listed too, with why: a script must not take an empty list
        // for "nothing was declared".
        let missing = try await ArtifactStore.missingOutputs(of: taskID, in: log)
        switch global.format {
        case .json:
            struct Line: Encodable {
                var path: String
                var attempt: Int
                var status: String
                var size: Int64?
                var sha256: String?
                var reason: String?
            }
            let lines =
                artifacts.map {
                    Line(path: $0.path, attempt: $0.attempt, status: "collected", size: $0.size, sha256: $0.sha256)
                } + missing.map { Line(path: $0.path, attempt: $0.attempt, status: "missing", reason: $0.reason) }
            print(Render.json(lines.sorted { $0.path < $1.path }))
        case .table:
            print(
                Render.table(
                    ["NAME", "ATTEMPT", "SIZE", "SHA256"],
                    artifacts.map { [$0.path, "\($0.attempt)", "\($0.size)", $0.sha256] }))
            for output in missing {
                print("missing: \(output.path) (attempt \(output.attempt)): \(output.reason)")
            }
        }
    }
}
