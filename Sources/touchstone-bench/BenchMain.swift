import ArgumentParser
import Foundation
import Logging
import Transport

/// `touchstone-bench`: the measurements behind `tools/bench` (issue 11's table), one subcommand per group of rows.
///
/// Each measuring subcommand writes its rows as a JSON array of ``BenchRow`` to `--out`; when it fails it writes one
/// row per row number it owns, with no value and the error as the note, and exits 0, so that the report says why.
/// `report` joins the files with the peers' lines, prints the table and writes the JSON of `--json`.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "touchstone-bench",
        abstract: "Measure Touchstone for tools/bench (issue 11's rows) and print the table.",
        subcommands: [
            LogRows.self, Latency.self, Throughput.self, Placements.self, Decision.self, Idle.self, SQSCalls.self,
            Report.self,
        ])

    /// Logs of in-process backends and agents go to stderr, warnings and worse only.
    static func quietLogging() {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
    }
}

/// Options every measuring subcommand takes.
struct CommonOptions: ParsableArguments {
    @Option(help: "Write the rows here, as a JSON array.")
    var out: String

    @Option(help: "A directory for this bench's state (made if missing).")
    var work: String = NSTemporaryDirectory() + "touchstone-bench"

    @Flag(help: "A small run: goals are not judged (met is null).")
    var smoke = false

    /// A new directory under `--work` for one measurement.
    func directory(_ name: String) throws -> String {
        let path = work + "/" + name
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Runs `body` and writes its rows; on failure writes one row per number in `rows` saying why.
    func emit(rows: [Int], metric: String, _ body: () async throws -> [BenchRow]) async throws {
        let result: [BenchRow]
        do {
            result = try await body()
        } catch {
            FileHandle.standardError.write(Data("touchstone-bench: \(metric) failed: \(error)\n".utf8))
            result = rows.map {
                BenchRow(row: $0, metric: metric, value: nil, unit: "", goal: "", met: nil, note: "failed: \(error)")
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(result).write(to: URL(fileURLWithPath: out))
    }
}

/// Options of subcommands that start `touchstone` and `touchstone-agent`.
struct BinaryOptions: ParsableArguments {
    @Option(help: "The directory holding touchstone and touchstone-agent (default: this executable's).")
    var bin: String?

    var directory: String {
        if let bin { return bin }
        let path = CommandLine.arguments[0]
        let resolved = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return (resolved as NSString).deletingLastPathComponent
    }
}

/// The SQS settings of the environment (`TOUCHSTONE_SQS_ENDPOINT`, `TOUCHSTONE_SQS_REGION`, AWS credentials), as
/// `tools/bench` exports them after starting ministack.
func sqsFromEnvironment() throws -> (transport: BenchTransport, configuration: SQSConfiguration) {
    let environment = ProcessInfo.processInfo.environment
    guard let endpoint = environment["TOUCHSTONE_SQS_ENDPOINT"], !endpoint.isEmpty else {
        throw BenchError("no SQS server: TOUCHSTONE_SQS_ENDPOINT is not set (tools/bench starts ministack)")
    }
    let region = environment["TOUCHSTONE_SQS_REGION"] ?? "us-east-1"
    guard case .sqs(let configuration) = try QueueTransport.fromSettings(
        transport: "sqs", queuePath: nil, region: region, endpoint: endpoint)
    else { throw BenchError("not an SQS transport") }
    return (.sqs(endpoint: endpoint, region: region), configuration)
}

struct Latency: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rows 4 (embedded) and 5 (sqs): submit → task.started p50/p99 and submit → task.finished p50.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var binaries: BinaryOptions

    @Option(help: "embedded or sqs (then from TOUCHSTONE_SQS_ENDPOINT).")
    var transport: String = "embedded"

    @Option(help: "Tasks timed, one at a time.")
    var samples: Int = 200

    func run() async throws {
        let rows = transport == "sqs" ? [5] : [4]
        try await common.emit(rows: rows, metric: "submit → task.started (\(transport))") {
            let choice = transport == "sqs" ? try sqsFromEnvironment().transport : .embedded
            let cluster = try Cluster(
                directory: try common.directory("latency-\(transport)"), binaries: binaries.directory, transport: choice)
            do {
                let (samples, note) = try await LatencyBench.run(cluster: cluster, samples: samples)
                await cluster.stopAll()
                return LatencyBench.rows(transport: choice, samples: samples, note: note, smoke: common.smoke)
            } catch {
                await cluster.stopAll()
                throw error
            }
        }
    }
}

struct Throughput: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rows 6 and 7: end-to-end tasks/s, then again with every core saturated by busy loops.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var binaries: BinaryOptions

    @Option(help: "Tasks of `true`.")
    var tasks: Int = 1_000

    @Option(help: "Agents (servers).")
    var agents: Int = 10

    @Option(help: "--max-tasks of each server.")
    var maxTasks: Int = 8

    @Option(help: "Busy loops for row 7 (default: one per core); 0 skips row 7.")
    var hogs: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Seconds a run may take before it is reported as timed out (tasks finished by then / elapsed).")
    var timeout: Int = 900

    func run() async throws {
        try await common.emit(rows: hogs > 0 ? [6, 7] : [6], metric: "end-to-end tasks/s") {
            func measure(_ name: String, hogs: Int) async throws -> ThroughputBench.Result {
                let cluster = try Cluster(
                    directory: try common.directory(name), binaries: binaries.directory, transport: .embedded)
                do {
                    let result = try await ThroughputBench.run(
                        cluster: cluster, tasks: tasks, agents: agents, maxTasks: maxTasks, hogs: hogs,
                        timeout: .seconds(timeout))
                    await cluster.stopAll()
                    return result
                } catch {
                    await cluster.stopAll()
                    throw error
                }
            }
            let calm = try await measure("throughput", hogs: 0)
            var rows = ThroughputBench.row6(calm, agents: agents, maxTasks: maxTasks)
            if hogs > 0 {
                let loaded = try await measure("throughput-loaded", hogs: hogs)
                rows += ThroughputBench.row7(loaded, calm: calm, hogs: hogs, smoke: common.smoke)
            }
            return rows
        }
    }
}

struct Placements: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Row 8: scheduler placements/s (in-process).")

    @OptionGroup var common: CommonOptions

    @Option(help: "Attached servers.")
    var servers: Int = 1_000

    @Option(help: "Queued tasks.")
    var tasks: Int = 10_000

    @Option(help: "Plans timed; the median is reported.")
    var repeats: Int = 5

    func run() async throws {
        try await common.emit(rows: [8], metric: "scheduler placements/s") {
            SchedulerBench.placements(servers: servers, tasks: tasks, repeats: repeats, smoke: common.smoke)
        }
    }
}

struct Decision: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Row 9: one scheduling decision as the history of finished tasks grows.")

    @OptionGroup var common: CommonOptions

    @Option(help: "History sizes (finished tasks), comma-separated; the first is the baseline.")
    var sizes: String = "1000,10000,100000"

    @Option(help: "Decisions timed per size; the median is reported.")
    var repeats: Int = 9

    func run() async throws {
        try await common.emit(rows: [9], metric: "one scheduling decision") {
            let sizes = self.sizes.split(separator: ",").compactMap { Int($0) }
            guard !sizes.isEmpty else { throw BenchError("--sizes takes numbers separated by commas") }
            return try await SchedulerBench.decisions(
                sizes: sizes, repeats: repeats, directory: try common.directory("decision"), smoke: common.smoke)
        }
    }
}

struct Idle: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Row 10: an idle agent's RSS and CPU, and the log events one idle server adds a minute.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var binaries: BinaryOptions

    @Option(help: "Seconds measured.")
    var seconds: Int = 60

    func run() async throws {
        try await common.emit(rows: [10], metric: "idle server") {
            let cluster = try Cluster(
                directory: try common.directory("idle"), binaries: binaries.directory, transport: .embedded)
            do {
                let rows = try await IdleBench.run(
                    cluster: cluster, window: .seconds(seconds), settle: .seconds(common.smoke ? 1 : 5),
                    smoke: common.smoke)
                await cluster.stopAll()
                return rows
            } catch {
                await cluster.stopAll()
                throw error
            }
        }
    }
}

struct SQSCalls: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sqs-calls", abstract: "Row 12: SQS API calls per idle server per day, and their monthly cost.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var binaries: BinaryOptions

    @Option(help: "Seconds counted.")
    var seconds: Int = 600

    func run() async throws {
        BenchCommand.quietLogging()
        try await common.emit(rows: [12], metric: "SQS calls per idle server") {
            let (transport, configuration) = try sqsFromEnvironment()
            let cluster = try Cluster(
                directory: try common.directory("sqs-calls"), binaries: binaries.directory, transport: transport)
            return try await SQSCallsBench.run(
                cluster: cluster, configuration: configuration, window: .seconds(seconds),
                settle: .seconds(common.smoke ? 2 : 10), smoke: common.smoke)
        }
    }
}

struct LogRows: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Rows 1, 2, 3 and 11: the event store alone (appends, group commit, rebuild, restart).")

    @OptionGroup var common: CommonOptions

    @Option(help: "The rows to measure, comma-separated (of 1, 2, 3, 11).")
    var rows: String = "1,2,3,11"

    func run() async throws {
        let numbers = rows.split(separator: ",").compactMap { Int($0) }
        try await common.emit(rows: numbers, metric: "event log") {
            let directory = URL(fileURLWithPath: try common.directory("log"))
            return try await LogBench.run(rows: Set(numbers), smoke: common.smoke, workDirectory: directory)
        }
    }
}
