import ArgumentParser
import Domain
import EventStore
import Foundation
import Transport
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

    @Option(name: .customLong("output"), help: "A small result file to collect when the task ends (repeatable).")
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
        let spec = try makeSpec()
        let log = try global.openLog()
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

    func makeSpec() throws -> TaskSpec {
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
        let spec = TaskSpec(
            name: name, command: argv, environment: env, files: working, outputs: outputs, gpus: gpus,
            timeoutSeconds: timeout, priority: priority, image: image)
        do {
            try spec.validate()
        } catch {
            throw CLIError(error.message)
        }
        return spec
    }
}
