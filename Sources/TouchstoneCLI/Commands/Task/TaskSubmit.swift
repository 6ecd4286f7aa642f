import ArgumentParser
import Domain
import EventStore
import Foundation
import Transport
import Orchestrator
import Projections

/// `touchstone task submit [options] -- COMMAND [ARGS…]`.
struct TaskSubmit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Submit a task: a command with its environment, working files and outputs.",
        discussion: """
            Everything after the options (or after --) is the command, run in the task's working directory.
            Example: touchstone task submit --file train.py --output metrics.json -- python3 train.py --C 1.0
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: "A label for the task.")
    var name: String?

    @Option(name: .customLong("env"), help: "An environment variable, KEY=VALUE (repeatable).")
    var environment: [String] = []

    @Option(name: .customLong("file"), help: "A working file, LOCAL[:REMOTE], copied into the working directory (repeatable).")
    var files: [String] = []

    @Option(
        name: .customLong("input"),
        help: "An input file of any size, LOCAL:REMOTE, put into the working directory before the task starts (repeatable).")
    var inputs: [String] = []

    @Option(
        name: .customLong("output"),
        help: "A result file collected into the artifact store when the task ends (repeatable); see `task artifacts`.")
    var outputs: [String] = []

    @Option(help: "GPUs the task needs.")
    var gpus: Int = 0

    @Option(help: "Wall-clock limit in seconds.")
    var timeout: Int?

    @Option(help: "Higher runs first; FIFO within a priority.")
    var priority: Int = 0

    @Option(help: "The container image to run the command in (agents with --runtime docker; docs/runtimes.md).")
    var image: String?

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments.")
    var command: [String] = []

    func run() async throws {
        _ = try makeSpec()  // every mistake found before an input is copied
        let log = try global.openLog()
        let spec = try makeSpec(inputs: try importInputs())
        let taskID = TaskID.random()
        do {
            try await log.append(
                .taskSubmitted(TaskSubmitted(taskID: taskID, spec: spec)), expectedVersion: .noStream,
                metadata: .init(actor: global.operatorActor))
        } catch {
            throw CLIError("\(error)")
        }
        switch global.format {
        case .json: print(Render.json(["taskID": taskID.rawValue]))
        case .table: print(taskID.rawValue)
        }
    }

    /// Copies each `--input` into the state directory's input store, named by its SHA-256.
    func importInputs() throws -> [InputFile] {
        let store = ArtifactStore(stateDirectory: global.resolvedStateDir)
        var result: [InputFile] = []
        for entry in inputs {
            let (local, remote) = try Self.splitInput(entry)
            do {
                let (sha, size) = try store.importInput(local)
                result.append(
                    InputFile(
                        path: remote, size: size, sha256: sha,
                        executable: FileManager.default.isExecutableFile(atPath: local)))
            } catch {
                throw CLIError("cannot read input file \(local): \(error)")
            }
        }
        return result
    }

    static func splitInput(_ entry: String) throws -> (local: String, remote: String) {
        guard let colon = entry.firstIndex(of: ":"), colon != entry.startIndex, entry.index(after: colon) != entry.endIndex
        else { throw CLIError("--input takes LOCAL:REMOTE, got \(entry.debugDescription)") }
        return (String(entry[..<colon]), String(entry[entry.index(after: colon)...]))
    }

    func makeSpec(inputs imported: [InputFile]? = nil) throws -> TaskSpec {
        if command.first == "--help" || command.first == "-h" { throw CleanExit.helpRequest(TaskSubmit.self) }
        let argv = command.first == "--" ? Array(command.dropFirst()) : command
        var env: [String: String] = [:]
        for pair in environment {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw CLIError("--env takes KEY=VALUE, got \(pair.debugDescription)")
            }
            env[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
        }
        var working: [WorkingFile] = []
        for entry in files {
            let parts = entry.split(separator: ":", maxSplits: 1).map(String.init)
            let local = parts[0]
            let remote = parts.count > 1 ? parts[1] : URL(fileURLWithPath: local).lastPathComponent
            guard let data = FileManager.default.contents(atPath: local) else {
                throw CLIError("cannot read working file \(local)")
            }
            let executable = FileManager.default.isExecutableFile(atPath: local)
            working.append(WorkingFile(path: remote, contents: data, executable: executable))
        }
        // Before the copy: placeholders with the right paths, so path mistakes are found first.
        let inputFiles = try imported ?? inputs.map {
            InputFile(path: try Self.splitInput($0).remote, size: 0, sha256: String(repeating: "0", count: 64))
        }
        let spec = TaskSpec(
            name: name, command: argv, environment: env, files: working, outputs: outputs, gpus: gpus,
            timeoutSeconds: timeout, priority: priority, image: image, inputs: inputFiles)
        do {
            try spec.validate()
        } catch {
            throw CLIError(error.message)
        }
        return spec
    }
}
