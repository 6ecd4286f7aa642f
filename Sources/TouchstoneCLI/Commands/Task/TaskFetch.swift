import ArgumentParser
import Domain
import EventStore
import Foundation
import Orchestrator
import Projections
import Wire

/// `touchstone task fetch ID PATH [--to LOCAL]`: copies one collected output out of the artifact store.
struct TaskFetch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch", abstract: "Copy a collected output file out of the artifact store, verifying its SHA-256.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The task ID (tsk-…).")
    var id: String

    @Argument(help: "The output's name, as `task artifacts` lists it.")
    var path: String

    @Option(help: "Where to write it (default: its file name in the current directory).")
    var to: String?

    func run() async throws {
        let log = try global.openLog()
        let taskID = TaskID(rawValue: id)
        guard try await log.readModel(TaskBoard.self)[taskID] != nil else {
            throw CLIError("unknown task \(id.debugDescription): see `touchstone task list`")
        }
        guard let artifact = try await ArtifactStore.artifacts(of: taskID, in: log).first(where: { $0.path == path })
        else {
            throw CLIError("task \(id) has no artifact \(path.debugDescription): see `touchstone task artifacts \(id)`")
        }
        let store = ArtifactStore(stateDirectory: global.resolvedStateDir)
        let source: String
        do {
            source = try PathConfinement.resolve(
                path, in: store.artifactDirectory(TaskAttempt(taskID: taskID, attempt: artifact.attempt)),
                creatingDirectories: false)
        } catch {
            throw CLIError("\(error)")
        }
        let target = to ?? URL(fileURLWithPath: path).lastPathComponent
        let sha = try Self.copy(source, to: target)
        guard sha == artifact.sha256 else {
            try? FileManager.default.removeItem(atPath: target)
            throw CLIError("\(path): the stored file has SHA-256 \(sha), not the recorded \(artifact.sha256); nothing written")
        }
        print("fetched \(path) (\(artifact.size) bytes, sha256 \(sha)) to \(target)")
    }

    /// Streams a copy and returns the SHA-256 of what was written.
    static func copy(_ source: String, to target: String) throws -> String {
        guard let input = FileHandle(forReadingAtPath: source) else { throw CLIError("cannot read \(source)") }
        defer { try? input.close() }
        guard FileManager.default.createFile(atPath: target, contents: nil), let output = FileHandle(forWritingAtPath: target)
        else { throw CLIError("cannot write \(target)") }
        do {
            defer { try? output.close() }
            while let data = try input.read(upToCount: FileChunking.streamBufferSize), !data.isEmpty {
                try output.write(contentsOf: data)
            }
        }
        return try FileDigest.sha256(ofFileAt: target).sha256
    }
}
