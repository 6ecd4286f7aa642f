import ArgumentParser
import EventStore
import Foundation
import Transport
import Domain
import Projections

/// `touchstone audit …`.
struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the log's integrity.", subcommands: [AuditVerify.self])
}

/// `touchstone audit verify`: the hash chain verifies and a rebuild equals the stored read models.
struct AuditVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify the hash chain, and that rebuilding every projection from position 0 equals the stored read models.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let log = try global.openLog()
        let checked: Int64
        let comparison: (mismatched: [String], position: Int64)
        do {
            checked = try await log.store.verifyChain()
            comparison = try await log.verifyReadModels()
        } catch {
            throw CLIError("\(error)")
        }
        struct Report: Encodable {
            var events: Int64
            var chainOK: Bool
            var rebuildEqual: Bool
            var mismatched: [String]
        }
        let report = Report(
            events: checked, chainOK: true, rebuildEqual: comparison.mismatched.isEmpty,
            mismatched: comparison.mismatched)
        switch global.format {
        case .json: print(Render.json(report))
        case .table:
            print("chain_ok=true events=\(checked) rebuild_equal=\(report.rebuildEqual)"
                + (report.mismatched.isEmpty ? "" : " mismatched=\(report.mismatched.joined(separator: ","))"))
        }
        if !report.rebuildEqual { throw ExitCode(2) }
    }
}
