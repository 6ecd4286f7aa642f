import ArgumentParser
import Domain
import Foundation
import Orchestrator

/// `touchstone gc`: applies the retention policy to the backend's task files (issue 15; docs/operations.md).
struct GC: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove the inputs, artifacts and log mirrors of tasks that ended more than N days ago.",
        discussion: """
            The event log is never rewritten: each run appends maintenance.gc-completed naming every removed path \
            and the bytes freed. An input file is kept while a task that has not ended (or ended within the \
            retention) names it, and for an hour after it was copied in. Directories of tasks the log does not \
            know are left alone. The agents' workspaces are not touched.
            """)

    @Option(help: "Days a task's files are kept after it ended (0: every ended task's).")
    var retentionDays: Int = RetentionPolicy().days

    @Flag(help: "Only print what would be removed; remove and record nothing.")
    var dryRun = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard (0...36_500).contains(retentionDays) else { throw ValidationError("--retention-days must be 0–36500") }
    }

    func run() async throws {
        let log = try global.openLog()
        let result = try await Retention.collect(
            stateDirectory: global.resolvedStateDir, log: log, policy: RetentionPolicy(days: retentionDays),
            actor: global.operatorActor, dryRun: dryRun)
        switch global.format {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        case .table:
            for removal in result.removed {
                print("\(dryRun ? "would remove" : "removed") \(removal.path) (\(removal.bytes) bytes)")
            }
            print(
                "\(dryRun ? "would free" : "freed") \(result.bytesFreed) bytes in \(result.removed.count) "
                    + "path(s) (retention \(retentionDays) days)")
        }
    }
}
