import ArgumentParser
import Domain
import EventStore
import Foundation
import Transport
import Orchestrator
import Projections
import Wire

/// `touchstone task submit [options] -- COMMAND [ARGS…]`.
struct TaskSubmit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Submit a task: a command with its environment, working files and outputs.",
        discussion: """
            Everything after -- is the command, run in the task's working directory; anything before -- must be an \
            option of task submit. The start request (command, --env values, --file contents) travels as one queue \
            message of at most 1 MiB; send larger data with --input.
            Example: touchstone task submit --file train.py --output metrics.json -- python3 train.py --C 1.0
            """)

    @Option(help: "A label for the task.")
    var name: String?

    @Option(help: "GPUs the task needs.")
    var gpus: Int = 0

    @Option(help: "The container image to run the command in (agents with --runtime docker; docs/runtimes.md).")
    var image: String?

    @Option(help: "Run only on this server (its name as attached); default: any that fits.")
    var server: String?

    @Option(
        name: .customLong("constraint"),
        help: "Run only on servers attached with this label, LABEL=VALUE (repeatable; see `server attach --label`).")
    var constraints: [String] = []

    @Option(name: .customLong("file"), help: "A small working file, LOCAL[:REMOTE], sent inline with the start request (repeatable).")
    var files: [String] = []

    @Option(
        name: .customLong("input"),
        help: "An input file of any size, LOCAL:REMOTE, put into the working directory before the task starts (repeatable; files, not directories).")
    var inputs: [String] = []

    @Option(
        name: .customLong("output"),
        help: "A result file collected into the artifact store when the task ends (repeatable); see `task artifacts`.")
    var outputs: [String] = []

    @Option(name: .customLong("env"), help: "An environment variable, KEY=VALUE (repeatable; sent inline with the start request).")
    var environment: [String] = []

    @Option(
        name: .customLong("secret-env"),
        help: "An environment variable whose value is read from this shell's environment and sealed to the agents' keys: never in the log, `events` or `task show` (repeatable).")
    var secretEnvironment: [String] = []

    @Option(help: "Wall-clock limit in seconds.")
    var timeout: Int?

    @Option(help: "Higher runs first; FIFO within a priority.")
    var priority: Int = 0

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The command and its arguments, after --.", valueName: "command"))
    var command: [String] = []

    @OptionGroup var global: GlobalOptions

    /// The option names `task submit` knows, for "did you mean" (its own and the global ones).
    static let knownOptions = [
        "--name", "--gpus", "--image", "--server", "--constraint", "--file", "--input", "--output", "--env", "--secret-env",
        "--timeout",
        "--priority", "--state-dir", "--format", "--help",
    ]

    func run() async throws {
        _ = try makeSpec()  // every mistake found before an input is copied
        let log = try global.openLog()
        if let server, try await log.readModel(ServerCapacity.self)[ServerID(rawValue: server)!] == nil {
            throw CLIError("unknown server \(server.debugDescription) for --server: see `touchstone server list`")
        }
        var spec = try makeSpec(inputs: try importInputs())
        spec.secrets = try await SecretsSupport.seal(secretEnvironment, for: spec, log: log)
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
        // Queued either way; without a backend nothing dispatches it, and the submitter should know (stderr:
        // scripts read the ID from stdout).
        if let down = try? await BackendStatus.read(stateDirectory: global.resolvedStateDir, log: log).downLine {
            FileHandle.standardError.write(Data("queued, but no backend is running: \(down)\n".utf8))
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
        let argv = try Self.commandAfterTerminator(command)
        for entry in inputs {
            let local = try Self.splitInput(entry).local
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: local, isDirectory: &isDirectory), isDirectory.boolValue {
                throw CLIError(
                    "--input \(local) is a directory: inputs are single files; send an archive "
                        + "(tar -cf data.tar -C \(local) .) and unpack it in the command")
            }
            // A device or a FIFO has no size to check against the limit and may never end (/dev/zero).
            var info = stat()
            if stat(local, &info) == 0, info.st_mode & S_IFMT != S_IFREG {
                throw CLIError("--input \(local) is not a regular file (a device, a FIFO or a socket): inputs are regular files")
            }
        }
        if let name, name.count > 200 {
            throw CLIError("--name is \(name.count) characters long: at most 200")
        }
        if let timeout, !(1...TaskSpec.maximumTimeoutSeconds).contains(timeout) {
            throw CLIError("--timeout \(timeout) is out of range: 1 to \(TaskSpec.maximumTimeoutSeconds) seconds (366 days)")
        }
        if let server, !ServerID.isValid(server) {
            throw CLIError("--server \(server.debugDescription) is not a server name (\(ServerID.shape))")
        }
        var constraintMap: [String: String] = [:]
        for entry in constraints {
            do {
                let (label, value) = try ServerLabels.parse(entry)
                constraintMap[label] = value
            } catch {
                throw CLIError("--constraint \(error.message)")
            }
        }
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
            timeoutSeconds: timeout, priority: priority, image: image, inputs: inputFiles,
            server: server.flatMap(ServerID.init(rawValue:)), constraints: constraintMap)
        do {
            try spec.validate()
        } catch {
            throw CLIError(error.message)
        }
        let bytes = Self.startRequestBytes(spec)
        let limit = QueueAttributes().maximumMessageSize
        guard bytes <= limit else {
            throw CLIError(
                "the task's start request would be \(bytes) bytes, over the transport's limit of \(limit) bytes per "
                    + "message: --env values and --file contents travel inside it; send large data with --input LOCAL:REMOTE")
        }
        return spec
    }

    /// The command: what follows `--`. Anything else left over is an option `task submit` does not know, or a
    /// command given without `--`.
    ///
    /// - Throws: ``CLIError`` naming the first such argument, with the closest known option when one is close.
    static func commandAfterTerminator(_ captured: [String]) throws -> [String] {
        guard let first = captured.first else { return [] }
        if first == "--" { return Array(captured.dropFirst()) }
        if first == "--help" || first == "-h" { throw CleanExit.helpRequest(TaskSubmit.self) }
        if first.hasPrefix("-") {
            let name = String(first.prefix { $0 != "=" })
            throw CLIError(
                "unknown option \(name) for `task submit`\(Suggestions.hint(for: name, among: knownOptions)) "
                    + "(the command goes after --)")
        }
        throw CLIError(
            "\(first.debugDescription) is not an option of `task submit`: put the command after --, as in "
                + "`touchstone task submit [options] -- \(ShellQuoting.join(captured))`")
    }

    /// The size in bytes of the largest `startTask` request the backend could send for this spec (the longest server
    /// name, request ID, sequence numbers, GPU list and a signature), as ``WireCoding`` encodes it onto the queue.
    static func startRequestBytes(_ spec: TaskSpec) -> Int {
        let start = StartTask(
            taskID: TaskID(rawValue: "tsk-000000000000"), attempt: 1_000, spec: spec,
            backend: String(repeating: "b", count: 128), gpuIndices: Array(0..<64))
        let farFuture = Date(timeIntervalSince1970: 9_999_999_999)
        let envelope = RequestEnvelope(
            requestID: .make(), server: ServerID(rawValue: String(repeating: "s", count: 63))!, channel: 15,
            epoch: .max, sequence: .max, sentAt: farFuture, expiresAt: farFuture, executionSeconds: 3_600,
            command: .startTask(start), signature: String(repeating: "A", count: 128))
        return WireCoding.encode(envelope).utf8.count
    }
}
