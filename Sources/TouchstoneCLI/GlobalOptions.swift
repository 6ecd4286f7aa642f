import ArgumentParser
import Domain
import EventStore
import Foundation
import Logging
import Operations
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
                + "Default: $TOUCHSTONE_STATE_DIR, else the stateDir of $TOUCHSTONE_CONFIG, else ./.touchstone"))
    public var stateDir: String?

    @Option(help: "Output format: table or json.")
    public var format: OutputFormat = .table

    public init() {}

    /// The state directory when nothing names one.
    public static let defaultStateDirectory = ".touchstone"

    /// The resolved state directory: `--state-dir`, else `TOUCHSTONE_STATE_DIR`, else the `stateDir` of the
    /// configuration file named by `TOUCHSTONE_CONFIG`, else `.touchstone`.
    public var resolvedStateDir: String {
        let environment = ProcessInfo.processInfo.environment
        return stateDir ?? environment["TOUCHSTONE_STATE_DIR"]
            ?? environment["TOUCHSTONE_CONFIG"].flatMap { SettingsFile.text("stateDir", inFile: $0) }
            ?? Self.defaultStateDirectory
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

    @Option(help: "The queue name prefix: queues are <prefix>-<server>-<n>-req.fifo / -resp.fifo. Default: touchstone.")
    /// The queue name prefix given on the command line; the resolved one is the `queuePrefix` setting.
    public var queuePrefix: String?

    @Option(
        help: ArgumentHelp(
            "The backend's YAML configuration file (docs/configuration.md): the command line, then the environment, "
                + "then this file, then the defaults. Default: $TOUCHSTONE_CONFIG, else none."))
    /// The configuration file given on the command line; `nil` falls back to `TOUCHSTONE_CONFIG`.
    public var config: String?

    public init() {}

    /// The transport and state options given on this command line, by configuration key.
    func commandLineSettings(global: GlobalOptions) -> [String: String] {
        let given: [(String, String?)] = [
            ("stateDir", global.stateDir), ("transport", transport), ("sqs.region", sqsRegion),
            ("sqs.endpoint", sqsEndpoint), ("queuePrefix", queuePrefix),
        ]
        return Dictionary(uniqueKeysWithValues: given.compactMap { key, value in value.map { (key, $0) } })
    }

    /// The backend's settings: `commandLine`, then the environment, then the configuration file (``config`` or
    /// `TOUCHSTONE_CONFIG`), then the declared defaults (``BackendSettings/keys``).
    ///
    /// - Throws: ``CLIError``, one line naming the key, the value and what is allowed.
    func resolveSettings(
        commandLine: [String: String], environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> ResolvedSettings {
        let named = config ?? environment["TOUCHSTONE_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        do {
            return try await SettingsResolver.resolve(
                BackendSettings.keys, commandLine: commandLine, environment: environment, file: named,
                fileRequired: named != nil)
        } catch {
            throw CLIError(error.description)
        }
    }

    /// The transport of resolved settings; configured SQS credentials take the place of the environment's.
    ///
    /// - Throws: ``CLIError`` for SQS without a region or credentials.
    func queueTransport(
        settings: ResolvedSettings, queuePath: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> QueueTransport {
        do {
            return try QueueTransport.fromSettings(
                transport: settings.text("transport"), queuePath: queuePath, region: settings.text("sqs.region"),
                endpoint: settings.text("sqs.endpoint"), environment: settings.environmentWithCredentials(environment))
        } catch {
            throw CLIError("\(error)")
        }
    }

    /// Opens the queues of resolved settings' transport.
    ///
    /// - Throws: ``CLIError`` when the transport is misconfigured or the embedded file cannot be opened.
    func openQueues(settings: ResolvedSettings, queuePath: String, logger: Logger) throws -> any QueueProvider {
        do {
            return try queueTransport(settings: settings, queuePath: queuePath).makeProvider(logger: logger)
        } catch let error as CLIError {
            throw error
        } catch {
            throw CLIError("\(error)")
        }
    }
}
