import Foundation
import Logging
import Operations
import Orchestrator
import Synchronization
import TestSupport
import Testing

@testable import TouchstoneCLI

/// Issue 15: configuration keys, their precedence, their errors and their documentation.
@Suite struct SettingsTests {
    let directory = TemporaryDirectory("settings")
    let keys = BackendSettings.keys

    func file(_ text: String) throws -> String {
        let path = directory.file("backend-\(UInt32.random(in: 0...UInt32.max)).yaml")
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func resolve(
        commandLine: [String: String] = [:], environment: [String: String] = [:], file: String? = nil
    ) async throws(SettingsError) -> ResolvedSettings {
        try await SettingsResolver.resolve(
            keys, commandLine: commandLine, environment: environment, file: file, fileRequired: file != nil)
    }

    @Test func theCommandLineBeatsTheEnvironmentWhichBeatsTheFileWhichBeatsTheDefault() async throws {
        let path = try file("statusInterval: 7\nmaxAttempts: 5\nlostAfter: 100\npacking: spread\n")
        let settings = try await resolve(
            commandLine: ["statusInterval": "2"],
            environment: ["TOUCHSTONE_STATUS_INTERVAL": "4", "TOUCHSTONE_MAX_ATTEMPTS": "6"], file: path)
        #expect(settings.entry("statusInterval").value == .number(2))
        #expect(settings.entry("statusInterval").source == .commandLine(option: "status-interval"))
        #expect(settings.entry("maxAttempts").value == .integer(6))
        #expect(settings.entry("maxAttempts").source == .environment(variable: "TOUCHSTONE_MAX_ATTEMPTS"))
        #expect(settings.entry("lostAfter").value == .integer(100))
        #expect(settings.entry("lostAfter").source == .file(path: path))
        #expect(settings.entry("stopGrace").value == .integer(10))
        #expect(settings.entry("stopGrace").source == .defaultValue)
        #expect(settings.entry("metrics.listen").source == .unset)
        let configuration = BackendSettings.configuration(settings, stateDirectory: "/x")
        #expect(configuration.statusInterval == .seconds(2))
        #expect(configuration.maxAttempts == 6)
        #expect(configuration.lostAfter == .seconds(100))
        #expect(configuration.packing == .spread)
    }

    @Test func withNothingGivenTheConfigurationIsBackendConfigurationsDefaults() async throws {
        let configuration = BackendSettings.configuration(try await resolve(), stateDirectory: "/x")
        let defaults = BackendSettings.defaults
        #expect(configuration.statusInterval == defaults.statusInterval)
        #expect(configuration.requestTimeout == defaults.requestTimeout)
        #expect(configuration.heartbeatTimeout == defaults.heartbeatTimeout)
        #expect(configuration.missedHeartbeatsForUnreachable == defaults.missedHeartbeatsForUnreachable)
        #expect(configuration.lostAfter == defaults.lostAfter)
        #expect(configuration.maxAttempts == defaults.maxAttempts)
        #expect(configuration.stopGraceSeconds == defaults.stopGraceSeconds)
        #expect(configuration.executionSeconds == defaults.executionSeconds)
        #expect(configuration.packing == defaults.packing)
        #expect(configuration.queuePrefix == defaults.queuePrefix)
        #expect(configuration.transfers.maxFileBytes == defaults.transfers.maxFileBytes)
    }

    @Test func nestedYAMLKeysAndTheirEnvironmentNames() async throws {
        let path = try file("sqs:\n  region: eu-west-1\nmetrics:\n  listen: 127.0.0.1:9464\nlog:\n  format: json\n")
        let settings = try await resolve(environment: ["TOUCHSTONE_SQS_ENDPOINT": "http://127.0.0.1:4566"], file: path)
        #expect(settings.text("sqs.region") == "eu-west-1")
        #expect(settings.text("sqs.endpoint") == "http://127.0.0.1:4566")
        #expect(settings.text("metrics.listen") == "127.0.0.1:9464")
        #expect(settings.text("log.format") == "json")
        #expect(
            keys.named("sqs.credentials.secretAccessKey").environmentVariable
                == "TOUCHSTONE_SQS_CREDENTIALS_SECRET_ACCESS_KEY")
        #expect(keys.named("stateDir").environmentVariable == "TOUCHSTONE_STATE_DIR")
        #expect(keys.named("transport").environmentVariable == "TOUCHSTONE_TRANSPORT")
    }

    @Test func aBadValueInTheFileIsOneLineNamingTheKeyTheValueAndWhatIsAllowed() async throws {
        let path = try file("statusInterval: 0\n")
        let error = await #expect(throws: SettingsError.self) { try await resolve(file: path) }
        #expect(
            error?.description
                == "statusInterval = \"0\" (file \(path)) is not allowed: statusInterval takes a number above 0 and at most 3600")
        let words = try file("packing: tight\n")
        let choice = await #expect(throws: SettingsError.self) { try await resolve(file: words) }
        #expect(choice?.description.contains("packing = \"tight\"") == true)
        #expect(choice?.description.hasSuffix("packing takes pack or spread") == true)
        let range = await #expect(throws: SettingsError.self) {
            try await resolve(environment: ["TOUCHSTONE_MAX_ATTEMPTS": "x"])
        }
        #expect(
            range?.description
                == "maxAttempts = \"x\" (environment ($TOUCHSTONE_MAX_ATTEMPTS)) is not allowed: maxAttempts takes a whole number 1–100")
        for error in [error, choice, range] { #expect(error?.description.contains("\n") == false) }
    }

    @Test func anUnknownKeyInTheFileIsRefusedWithTheNearestKnownOne() async throws {
        let path = try file("statusIntervall: 5\n")
        let error = await #expect(throws: SettingsError.self) { try await resolve(file: path) }
        #expect(
            error?.description
                == "statusIntervall in the configuration file \(path) is not a known key: did you mean statusInterval?")
    }

    @Test func aMissingNamedFileAndAMalformedFileAreErrors() async throws {
        let missing = directory.file("nope.yaml")
        let error = await #expect(throws: SettingsError.self) { try await resolve(file: missing) }
        #expect(error?.description == "the configuration file \(missing) does not exist")
        let malformed = try file("statusInterval: [1, 2\n")
        await #expect(throws: SettingsError.self) { try await resolve(file: malformed) }
    }

    @Test func metricsListenAcceptsLoopbackAddressesOnly() throws {
        for good in ["127.0.0.1:9464", "[::1]:9464", "localhost:1", "127.1.2.3:65535"] {
            #expect(LoopbackAddress(good) != nil, "\(good)")
        }
        for bad in ["0.0.0.0:9464", "10.0.0.1:9464", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "example.com:80"] {
            #expect(LoopbackAddress(bad) == nil, "\(bad)")
        }
    }

    @Test func secretsAreNeverPrinted() async throws {
        let path = try file("sqs:\n  credentials:\n    accessKeyId: AKIDEXAMPLE\n    secretAccessKey: wJalrXUtnFEMI\n")
        let settings = try await resolve(file: path)
        #expect(settings.text("sqs.credentials.secretAccessKey") == "wJalrXUtnFEMI")
        let table = SettingsRendering.table(settings)
        let json = SettingsRendering.json(settings)
        for shown in [table, json] {
            #expect(!shown.contains("wJalrXUtnFEMI"))
            #expect(!shown.contains("AKIDEXAMPLE"))
            #expect(shown.contains("<secret>"))
        }
        #expect(table.contains("sqs.credentials.secretAccessKey"))
        #expect(table.contains("file \(path)"))
        // A bad secret value is not echoed in the error either.
        var secretKey = keys.named("sqs.credentials.accessKeyId")
        secretKey.kind = .integer(1...2)
        #expect(throws: SettingsError.self) { try secretKey.parse("hunter2", from: .defaultValue) }
        do {
            _ = try secretKey.parse("hunter2", from: .defaultValue)
        } catch {
            #expect(!error.description.contains("hunter2"))
        }
    }

    @Test func configuredCredentialsReplaceTheEnvironments() async throws {
        let path = try file("sqs:\n  credentials:\n    accessKeyId: AKID\n    secretAccessKey: SECRET\n")
        let environment = try await resolve(file: path).environmentWithCredentials(
            ["AWS_ACCESS_KEY_ID": "old", "AWS_SESSION_TOKEN": "token", "HOME": "/root"])
        #expect(environment["AWS_ACCESS_KEY_ID"] == "AKID")
        #expect(environment["AWS_SECRET_ACCESS_KEY"] == "SECRET")
        #expect(environment["AWS_SESSION_TOKEN"] == nil)
        #expect(environment["HOME"] == "/root")
    }

    @Test func theStateDirectoryFallsBackToTheConfigurationFileOfTouchstoneConfig() throws {
        let path = try file("stateDir: /srv/touchstone\nlog:\n  level: debug\n")
        #expect(SettingsFile.text("stateDir", inFile: path) == "/srv/touchstone")
        #expect(SettingsFile.text("log.level", inFile: path) == "debug")
        #expect(SettingsFile.text("log", inFile: path) == nil)
        #expect(SettingsFile.text("stateDir", inFile: directory.file("none.yaml")) == nil)
    }

    /// docs/configuration.md holds the generated tables: regenerate them with `touchstone config keys` and
    /// `touchstone-agent --config-keys` when a key changes.
    @Test func theDocumentedTableIsTheDeclaration() throws {
        var url = URL(fileURLWithPath: #filePath)
        while !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
            url.deleteLastPathComponent()
        }
        let document = try String(contentsOf: url.appendingPathComponent("docs/configuration.md"), encoding: .utf8)
        #expect(document.contains(SettingsRendering.markdownTable(keys)))
        for key in keys {
            #expect(key.summary.hasSuffix("."), "\(key.name)")
            if case .integer = key.kind { #expect(key.defaultValue == nil || Int(key.defaultValue!) != nil) }
        }
    }
}

/// Issue 15: `--log-format json`.
@Suite struct JSONLogHandlerTests {
    @Test func eachRecordIsOneJSONObjectOnOneLine() throws {
        let lines = Mutex<[String]>([])
        var logger = Logger(label: "touchstone.test") { label in
            JSONLogHandler(label: label) { line in lines.withLock { $0.append(line) } }
        }
        logger[metadataKey: "server"] = "gpu-01"
        logger.info("task started\nsecond line", metadata: ["task.id": "tsk-1", "attempts": .array(["1", "2"])])
        logger.debug("not written at info")
        let written = lines.withLock { $0 }
        #expect(written.count == 1)
        let line = try #require(written.first)
        #expect(line.hasSuffix("}\n"))
        #expect(line.dropLast().contains("\n") == false)
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["level"] as? String == "info")
        #expect(object["label"] as? String == "touchstone.test")
        #expect(object["message"] as? String == "task started\nsecond line")
        let metadata = try #require(object["metadata"] as? [String: Any])
        #expect(metadata["server"] as? String == "gpu-01")
        #expect(metadata["task.id"] as? String == "tsk-1")
        #expect(metadata["attempts"] as? [String] == ["1", "2"])
        let timestamp = try #require(object["timestamp"] as? String)
        #expect(timestamp.hasSuffix("Z"), "\(timestamp)")
        #expect(try Date(timestamp, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true)) <= Date())
    }
}
