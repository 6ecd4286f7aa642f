import ArgumentParser
import Domain
import EventStore
import Foundation
import Projections
import Transport

/// How results are printed.
public enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case table, json
}

/// Options every command shares.
public struct GlobalOptions: ParsableArguments {
    @Option(
        name: .customLong("state-dir"),
        help: ArgumentHelp(
            "The directory holding the event log (touchstone.db) and the embedded queues (queues.db). "
                + "Default: $TOUCHSTONE_STATE_DIR, else ./.touchstone"))
    public var stateDir: String?

    @Option(help: "Output format: table or json.")
    public var format: OutputFormat = .table

    public init() {}

    /// The resolved state directory.
    public var resolvedStateDir: String {
        stateDir ?? ProcessInfo.processInfo.environment["TOUCHSTONE_STATE_DIR"] ?? ".touchstone"
    }

    public var logPath: String { resolvedStateDir + "/touchstone.db" }
    public var queuePath: String { resolvedStateDir + "/queues.db" }

    /// Opens the log, creating the state directory when `create` is true.
    ///
    /// - Throws: ``CLIError`` when the directory does not exist (and `create` is false) or the log cannot be opened.
    public func openLog(create: Bool = false) throws -> TouchstoneLog {
        let directory = resolvedStateDir
        if !FileManager.default.fileExists(atPath: directory) {
            guard create else {
                throw CLIError(
                    "no Touchstone state at \(directory): attach a server first, or pass --state-dir")
            }
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        do {
            return try TouchstoneLog(path: logPath)
        } catch where error.code == .notAnEventLog {
            throw CLIError(error.message)
        } catch {
            throw CLIError("\(error)")
        }
    }

    /// Opens the embedded queue store.
    ///
    /// - Throws: ``CLIError`` when it is not a queue database or cannot be opened.
    public func openQueues() throws -> EmbeddedQueueStore {
        do {
            return try EmbeddedQueueStore(path: queuePath)
        } catch {
            throw CLIError("\(error)")
        }
    }

    /// The actor recorded for operator commands: `operator:<user>`.
    public var operatorActor: String {
        let environment = ProcessInfo.processInfo.environment
        if let user = environment["USER"] ?? environment["LOGNAME"], !user.isEmpty { return "operator:\(user)" }
        if let entry = getpwuid(getuid()), let name = entry.pointee.pw_name { return "operator:" + String(cString: name) }
        return "operator:uid\(getuid())"
    }
}

/// An operator error: printed as one line, exit code 1.
public struct CLIError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
