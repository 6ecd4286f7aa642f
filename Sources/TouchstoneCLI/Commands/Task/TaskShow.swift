import ArgumentParser
import Domain
import EventStore
import Foundation
import Transport
import Orchestrator
import Projections

/// `touchstone task show ID`: the task's state and its whole event history.
struct TaskShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show a task's status and its whole event history.")

    @Argument(help: "The task ID (tsk-…), or any unique prefix of it.")
    var id: String

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let log = try global.openLog()
        let taskID = try await log.resolveTask(id)
        let snapshot = try await log.snapshot()
        let waiting = snapshot.tasks[taskID].flatMap {
            Scheduler.explain($0, tasks: snapshot.tasks, servers: snapshot.servers)
        }
        guard let row = snapshot.tasks[taskID] else {
            throw CLIError("unknown task \(id.debugDescription): see `touchstone task list`")
        }
        let own = try await log.store.read(stream: StreamName.task(taskID))
        var requestIDs: [String] = []
        for event in own {
            if case .taskDispatched(let e) = try ReadModels.decode(event).event { requestIDs.append(e.requestID.rawValue) }
        }
        var positions = Set(own.map(\.position))
        var history = own
        for event in try await log.store.read(correlationIDs: requestIDs) where !positions.contains(event.position) {
            positions.insert(event.position)
            history.append(event)
        }
        history.sort { $0.position < $1.position }
        let missing = try await ArtifactStore.missingOutputs(of: taskID, in: log)
        switch global.format {
        case .json:
            struct Shown: Encodable {
                var task: TaskRow
                var waiting: String?
                var missingOutputs: [ArtifactStore.MissingOutput]
                var events: [EventLine]
            }
            print(
                Render.json(
                    Shown(task: row, waiting: waiting, missingOutputs: missing, events: history.map(EventLine.init))))
        case .table:
            // What a submitter typed (a name, a reason from a report) is printed with its control characters escaped.
            print("task        \(row.taskID)\(row.name.map { " (\(Render.printable($0)))" } ?? "")")
            print("status      \(row.status.rawValue)\(row.reason.map { ": \(Render.printable($0))" } ?? "")")
            if let waiting { print("why         \(waiting)") }
            print("command     \(ShellQuoting.join(row.command))")
            print("needs       \(row.gpus) GPU(s), priority \(row.priority)\(row.gpuIndices.isEmpty ? "" : ", booked GPUs \(row.gpuIndices.map(String.init).joined(separator: ","))")")
            if row.pinnedServer != nil || !(row.constraints ?? [:]).isEmpty {
                let constraints = (row.constraints ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                print(
                    "placement   "
                        + ([row.pinnedServer.map { "only on \($0)" }].compactMap { $0 } + constraints).joined(separator: ", "))
            }
            print("server      \(row.serverID?.rawValue ?? "-") attempt \(row.attempt), pid \(row.pid.map(String.init) ?? "-")")
            print("submitted   \(Render.time(row.submittedAt))")
            print("started     \(Render.time(row.startedAt))")
            print("finished    \(Render.time(row.finishedAt)) exit \(row.exitCode.map(String.init) ?? "-")")
            for (path, text) in row.outputs.sorted(by: { $0.key < $1.key }) {
                let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
                let shown = trimmed.count > 200 ? trimmed.prefix(200) + "… (\(text.utf8.count) bytes; --format json has it all)" : trimmed
                print("output      \(path): \(shown)")
            }
            for output in missing {
                print("missing     \(output.path) (attempt \(output.attempt)): \(output.reason)")
            }
            print("")
            print(
                Render.table(
                    ["POS", "TIME", "STREAM", "TYPE", "ACTOR", "REQUEST"],
                    history.map {
                        [
                            "\($0.position)", Render.time($0.recordedAt), $0.stream, $0.type, $0.metadata.actor,
                            $0.metadata.correlationID ?? "-",
                        ]
                    }))
        }
    }
}
