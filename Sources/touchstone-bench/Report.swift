import ArgumentParser
import Foundation

/// One line of a peer script (`tools/lib/bench-peers/…`): `{"peer":"slurm","tasks":N,"seconds":S,"tasks_per_s":R}`,
/// `{"peer":"boto3-roundtrip","rounds":N,"p50_ms":…,"p99_ms":…,"mean_ms":…}`, or `{"peer":…,"error":"why"}`.
struct PeerResult: Codable, Sendable, Equatable {
    var peer: String
    var tasks: Int?
    var seconds: Double?
    var tasksPerSecond: Double?
    var rounds: Int?
    var p50Milliseconds: Double?
    var p99Milliseconds: Double?
    var error: String?

    enum CodingKeys: String, CodingKey {
        case peer, tasks, seconds, rounds, error
        case tasksPerSecond = "tasks_per_s"
        case p50Milliseconds = "p50_ms"
        case p99Milliseconds = "p99_ms"
    }
}

/// Joins the measured rows with the peers' figures, and renders the table.
enum ReportRules {
    /// Where a peer's figure goes: the row number, a fragment of the metric, the baseline's words, the figure, and
    /// the goal's test of the ratio (value / baseline).
    struct Baseline: Sendable {
        var row: Int
        var metricContains: String
        var peer: String
        var words: String
        var figure: @Sendable (PeerResult) -> Double?
        var met: @Sendable (Double) -> Bool
    }

    static let baselines: [Baseline] = [
        Baseline(
            row: 5, metricContains: "task.started p50", peer: "boto3-roundtrip",
            words: "boto3 on the same ministack: send request → blocked long poll returns → send response → "
                + "blocked long poll returns, p50",
            figure: \.p50Milliseconds, met: { $0 <= 1.2 }),
        Baseline(
            row: 6, metricContains: "vs Slurm", peer: "slurm",
            words: "Slurm (slurmctld + slurmd on loopback, batch_sched_delay=0), the same jobs through sbatch",
            figure: \.tasksPerSecond, met: { $0 >= 10 }),
        Baseline(
            row: 6, metricContains: "vs Celery", peer: "celery",
            words: "Celery over SQS on the same ministack (polling_interval=0), one worker",
            figure: \.tasksPerSecond, met: { $0 >= 2 }),
    ]

    /// Fills each row's baseline from its peer's result; a peer that failed or is absent leaves no baseline and no
    /// ratio, and the note says why. Goals are judged only outside smoke runs.
    static func applyPeers(_ rows: [BenchRow], peers: [PeerResult], smoke: Bool) -> [BenchRow] {
        rows.map { row in
            guard let rule = baselines.first(where: { $0.row == row.row && row.metric.contains($0.metricContains) })
            else { return row }
            let peer = peers.first { $0.peer == rule.peer }
            let figure = peer.flatMap(rule.figure)
            let why: String? =
                if let peer, let error = peer.error { "baseline \(rule.peer) did not run: \(error)" }
                else if peer == nil { "baseline \(rule.peer): no result" }
                else if figure == nil { "baseline \(rule.peer): its line has no figure" }
                else { nil }
            var joined = BenchRow(
                row: row.row, metric: row.metric, value: row.value, unit: row.unit,
                baseline: figure == nil ? nil : rule.words, baselineValue: figure, goal: row.goal, met: nil,
                note: [row.note, why].compactMap { $0 }.joined(separator: "; "))
            if joined.note == "" { joined.note = nil }
            if !smoke, let ratio = joined.ratio { joined.met = rule.met(ratio) }
            return joined
        }
    }

    /// Adds a row, with no value and a note, for each expected row number that no file provided; sorts by row.
    static func complete(_ rows: [BenchRow], expected: [Int]) -> [BenchRow] {
        let present = Set(rows.map(\.row))
        let added = expected.filter { !present.contains($0) }.map { number in
            BenchRow(
                row: number, metric: "row \(number)", value: nil, unit: "", goal: "", met: nil,
                note: "not measured: its bench produced no output (see the run's output)")
        }
        return (rows + added).enumerated().sorted { ($0.element.row, $0.offset) < ($1.element.row, $1.offset) }
            .map(\.element)
    }

    /// A figure with 3 significant digits at most after the point, or `—`.
    static func format(_ value: Double?) -> String {
        guard let value else { return "—" }
        if value.magnitude >= 1_000 { return String(format: "%.0f", value) }
        if value.magnitude >= 10 { return String(format: "%.1f", value) }
        return String(format: "%.3g", value)
    }

    /// The table: one line per row, then the notes numbered by line.
    static func table(_ rows: [BenchRow]) -> String {
        let header = ["#", "metric", "value", "unit", "baseline", "baseline value", "ratio", "goal", "met"]
        let lines = rows.map { row in
            [
                "\(row.row)", row.metric, format(row.value), row.unit, row.baseline.map { String($0.prefix(40)) } ?? "—",
                format(row.baselineValue), row.ratio.map { String(format: "%.2fx", $0) } ?? "—", row.goal,
                row.met.map { $0 ? "yes" : "NO" } ?? "—",
            ]
        }
        let widths = header.indices.map { column in ([header] + lines).map { $0[column].count }.max() ?? 0 }
        func render(_ cells: [String]) -> String {
            cells.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: " | ").trimmingCharacters(in: .whitespaces)
        }
        var text = render(header) + "\n" + widths.map { String(repeating: "-", count: $0) }.joined(separator: "-|-") + "\n"
        text += lines.map(render).joined(separator: "\n") + "\n"
        let notes = rows.enumerated().compactMap { index, row in row.note.map { "  [\(index + 1)] row \(row.row): \($0)" } }
        if !notes.isEmpty { text += "\nnotes (by line):\n" + notes.joined(separator: "\n") + "\n" }
        return text
    }
}

struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Join the rows' files with the peers' lines, print the table, write the JSON.")

    @Option(name: .customLong("rows"), parsing: .upToNextOption, help: "Files of rows written by the other subcommands.")
    var rowFiles: [String] = []

    @Option(name: .customLong("peer"), parsing: .upToNextOption, help: "Files each holding one peer script's JSON line.")
    var peerFiles: [String] = []

    @Option(help: "Row numbers that must appear (comma-separated); each one missing gets a row saying so.")
    var expect: String = "1,2,3,4,5,6,7,8,9,10,11,12"

    @Option(help: "Write the rows here as a JSON array.")
    var json: String?

    @Option(help: "A title line printed above the table (e.g. the commit and the build).")
    var title: String?

    @Flag(help: "A smoke run: goals are not judged.")
    var smoke = false

    func run() async throws {
        var rows: [BenchRow] = []
        for file in rowFiles {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            do {
                rows += try JSONDecoder().decode([BenchRow].self, from: data)
            } catch {
                throw ValidationError("\(file) is not a JSON array of rows: \(error)")
            }
        }
        var peers: [PeerResult] = []
        for file in peerFiles {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last { $0.hasPrefix("{") }
            guard let line, let peer = try? JSONDecoder().decode(PeerResult.self, from: Data(line.utf8)) else {
                let name = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
                peers.append(PeerResult(peer: name, error: "its output is not one JSON line: "
                    + String(String(decoding: data, as: UTF8.self).suffix(200))))
                continue
            }
            peers.append(peer)
        }
        let expected = expect.split(separator: ",").compactMap { Int($0) }
        let final = ReportRules.complete(
            ReportRules.applyPeers(rows, peers: peers, smoke: smoke), expected: expected)
        if let title { print(title) }
        print(ReportRules.table(final), terminator: "")
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(final).write(to: URL(fileURLWithPath: json))
        }
    }
}
