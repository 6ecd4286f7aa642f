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

    @Argument(help: "The task ID (tsk-…), or any unique prefix of it.")
    var id: String

    @Argument(help: "The output's name, as `task artifacts` lists it.")
    var path: String

    @Option(help: "Where to write it: a file, or a directory to put it in (default: its file name in the current directory).")
    var to: String?

    @Flag(help: "Overwrite the file if it exists.")
    var force = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let log = try global.openLog()
        let taskID = try await log.resolveTask(id)
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
        if !FileManager.default.fileExists(atPath: source),
            let notice = try await Retention.removalNotice("the artifacts of \(taskID) were", path: "artifacts/\(taskID)", in: log)
        {
            throw CLIError(notice)
        }
        let name = URL(fileURLWithPath: path).lastPathComponent
        var target = to ?? name
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory), isDirectory.boolValue {
            target = URL(fileURLWithPath: target).appendingPathComponent(name).path
        }
        if FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory) {
            guard !isDirectory.boolValue else { throw CLIError("cannot write \(target): it is a directory") }
            guard force else { throw CLIError("\(target) exists: pass --force to overwrite it, or --to another path") }
        }
        let sha = try Self.copy(source, to: target, expectedSHA256: artifact.sha256)
        guard sha == artifact.sha256 else {
            throw CLIError("\(path): the stored file has SHA-256 \(sha), not the recorded \(artifact.sha256); nothing written")
        }
        print("fetched \(path) (\(artifact.size) bytes, sha256 \(sha)) to \(target)")
    }

    /// Streams a copy into a temporary file next to `target`, then renames it over `target` when its SHA-256 is
    /// `expectedSHA256`, so a failed or corrupt copy leaves nothing behind; returns the SHA-256 of the copy.
    ///
    /// - Throws: ``CLIError`` naming the reason (`strerror`) when the source cannot be read or the target written.
    static func copy(_ source: String, to target: String, expectedSHA256: String) throws -> String {
        guard let input = FileHandle(forReadingAtPath: source) else { throw CLIError("cannot read \(source)") }
        defer { try? input.close() }
        let directory = URL(fileURLWithPath: target).deletingLastPathComponent().path
        let temporary = directory + "/.touchstone-fetch-\(getpid())-" + URL(fileURLWithPath: target).lastPathComponent
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CLIError("cannot write \(target): \(String(cString: strerror(errno)))") }
        let output = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        do {
            defer { try? output.close() }
            while let data = try input.read(upToCount: FileChunking.streamBufferSize), !data.isEmpty {
                try output.write(contentsOf: data)
            }
        } catch {
            unlink(temporary)
            throw CLIError("cannot write \(target): \(error.localizedDescription)")
        }
        let sha = try FileDigest.sha256(ofFileAt: temporary).sha256
        guard sha == expectedSHA256 else {
            unlink(temporary)
            return sha
        }
        guard rename(temporary, target) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw CLIError("cannot write \(target): \(reason)")
        }
        return sha
    }
}
