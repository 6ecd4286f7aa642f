import ArgumentParser
import Domain
import EventStore
import Foundation
import Logging
import Projections
import Transport

/// How results are printed.
public enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case table, json
}

/// Options every command shares (listed after each command's own options in `--help`).
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
            // Owner only: the log, the queues and the backend's key are in it (docs/security.md).
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        do {
            return try TouchstoneLog(path: logPath)
        } catch where error.code == .notAnEventLog {
            throw CLIError(error.message)
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

/// The queue transport's options, for the commands that open queues (`serve`, `server attach`); shown in `--help`
/// as a group of their own.
public struct TransportOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The queue transport: embedded (queues.db in the state dir) or sqs. Default: $TOUCHSTONE_TRANSPORT, "
                + "else embedded."))
    /// `embedded` or `sqs`; `nil` falls back to `TOUCHSTONE_TRANSPORT`, then `embedded`.
    public var transport: String?

    @Option(help: "The SQS region (sqs transport). Default: $TOUCHSTONE_SQS_REGION, else $AWS_REGION.")
    /// The SQS region; `nil` falls back to `TOUCHSTONE_SQS_REGION`, `AWS_REGION`, `AWS_DEFAULT_REGION`.
    public var sqsRegion: String?

    @Option(help: "An SQS endpoint URL overriding the region's (sqs transport). Default: $TOUCHSTONE_SQS_ENDPOINT.")
    /// An SQS endpoint URL overriding the region's; `nil` falls back to `TOUCHSTONE_SQS_ENDPOINT`.
    public var sqsEndpoint: String?

    @Option(help: "The queue name prefix: queues are <prefix>-<server>-<n>-req.fifo / -resp.fifo.")
    /// The queue name prefix: queues are `<prefix>-<server>-<n>-req.fifo` / `-resp.fifo`.
    public var queuePrefix: String = "touchstone"

    public init() {}

    /// The configured transport (``transport``, ``sqsRegion``, ``sqsEndpoint``, with their environment fallbacks).
    ///
    /// - Throws: ``CLIError`` for an unknown transport, or SQS without a region or credentials.
    public func queueTransport(queuePath: String) throws -> QueueTransport {
        do {
            return try QueueTransport.fromSettings(
                transport: transport, queuePath: queuePath, region: sqsRegion, endpoint: sqsEndpoint)
        } catch {
            throw CLIError("\(error)")
        }
    }

    /// Opens the configured transport's queues.
    ///
    /// - Parameters:
    ///   - queuePath: The embedded queue file (``GlobalOptions/queuePath``).
    ///   - logger: The SQS client's logger.
    /// - Throws: ``CLIError`` when the transport is misconfigured or the embedded file cannot be opened.
    public func openQueues(queuePath: String, logger: Logger = Logger(label: "touchstone.queues")) throws -> any QueueProvider {
        do {
            return try queueTransport(queuePath: queuePath).makeProvider(logger: logger)
        } catch let error as CLIError {
            throw error
        } catch {
            throw CLIError("\(error)")
        }
    }

}
