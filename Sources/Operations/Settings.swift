import Configuration
import Foundation
import SystemPackage

/// A parsed configuration value.
public enum SettingValue: Sendable, Equatable, CustomStringConvertible {
    case text(String)
    case integer(Int)
    case number(Double)
    case flag(Bool)

    public var description: String {
        switch self {
        case .text(let text): text
        case .integer(let value): String(value)
        case .number(let value): SettingKey.format(value)
        case .flag(let value): String(value)
        }
    }
}

/// Where a resolved value came from, in precedence order.
public enum SettingSource: Sendable, Equatable, CustomStringConvertible {
    case commandLine(option: String)
    case environment(variable: String)
    case file(path: String)
    case defaultValue
    /// No source gave a value, and the key has no default.
    case unset

    public var description: String {
        switch self {
        case .commandLine(let option): "command line (--\(option))"
        case .environment(let variable): "environment ($\(variable))"
        case .file(let path): "file \(path)"
        case .defaultValue: "default"
        case .unset: "unset"
        }
    }
}

/// A configuration problem: one line naming the key, the value and what is allowed.
public struct SettingsError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension SettingKey {
    /// Parses and checks one value's text. Pure.
    ///
    /// - Returns: The value, typed by ``kind``.
    /// - Throws: ``SettingsError`` naming the key, the value (or `<secret>`), its source and what is allowed.
    public func parse(_ text: String, from source: SettingSource) throws(SettingsError) -> SettingValue {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let value: SettingValue?
        switch kind {
        case .text:
            value = trimmed.isEmpty ? nil : .text(trimmed)
        case .choice(let words):
            value = words.contains(trimmed) ? .text(trimmed) : nil
        case .integer(let range):
            value = Int(trimmed).flatMap { range.contains($0) ? .integer($0) : nil }
        case .number(let above, let atMost):
            value = Double(trimmed).flatMap { $0.isFinite && $0 > above && $0 <= atMost ? .number($0) : nil }
        case .flag:
            switch trimmed.lowercased() {
            case "true", "yes", "1", "on": value = .flag(true)
            case "false", "no", "0", "off": value = .flag(false)
            default: value = nil
            }
        case .loopbackAddress:
            value = LoopbackAddress(trimmed) != nil ? .text(trimmed) : nil
        }
        guard let value else {
            let shown = secret ? "<secret>" : "\"\(text)\""
            throw SettingsError("\(name) = \(shown) (\(source)) is not allowed: \(name) takes \(allowed)")
        }
        return value
    }
}

/// A loopback `host:port`: where a diagnostic port may listen (never another interface).
public struct LoopbackAddress: Sendable, Equatable {
    public var host: String
    public var port: Int

    /// Parses `127.0.0.1:9464`, `[::1]:9464` or `localhost:9464`; `nil` for anything else, any other host included.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        let isV4Loopback =
            octets.count == 4 && octets.first == "127" && octets.allSatisfy { UInt8($0) != nil }
        guard isV4Loopback || host == "::1" || host == "localhost" else { return nil }
        self.host = host
        self.port = port
    }
}

/// The resolved configuration: every declared key with its value (if any) and its source.
public struct ResolvedSettings: Sendable {
    public struct Entry: Sendable, Equatable {
        public var key: SettingKey
        public var value: SettingValue?
        public var source: SettingSource
    }

    /// In declaration order.
    public var entries: [Entry]
    /// The configuration file read, if any.
    public var file: String?

    public func entry(_ name: String) -> Entry {
        guard let entry = entries.first(where: { $0.key.name == name }) else {
            preconditionFailure("configuration key \(name) is not declared")
        }
        return entry
    }

    public func text(_ name: String) -> String? {
        entry(name).value.map(\.description)
    }
    public func integer(_ name: String) -> Int? {
        if case .integer(let value) = entry(name).value { return value }
        return nil
    }
    public func number(_ name: String) -> Double? {
        switch entry(name).value {
        case .number(let value): value
        case .integer(let value): Double(value)
        default: nil
        }
    }
    /// A number of seconds as a duration, to the millisecond.
    public func duration(_ name: String) -> Duration? {
        number(name).map { .milliseconds(Int64(($0 * 1000).rounded())) }
    }
    public func flag(_ name: String) -> Bool? {
        if case .flag(let value) = entry(name).value { return value }
        return nil
    }
}

/// Resolves declared keys from, in precedence order, the command line, the environment, a YAML file and the
/// declared defaults (issue 15), with swift-configuration's providers: an `InMemoryProvider` for the parsed options,
/// `EnvironmentVariablesProvider` under the `TOUCHSTONE` prefix, and `FileProvider<YAMLSnapshot>`.
public enum SettingsResolver {
    /// Resolves every key.
    ///
    /// - Parameters:
    ///   - keys: The declaration.
    ///   - commandLine: The options given on the command line, by key name, as their text.
    ///   - environment: The process's environment.
    ///   - file: The YAML file to read, or `nil` for none.
    ///   - fileRequired: Whether a missing `file` is an error (it was named explicitly) or skipped (a default path).
    ///   - enforceRequired: Whether a required key without a value is an error (`false` for showing what is set).
    /// - Returns: Each key's value and source.
    /// - Throws: ``SettingsError``, one line: an unreadable or malformed file, a value of the wrong type or out of
    ///   range, or a required key with no value.
    public static func resolve(
        _ keys: [SettingKey], commandLine: [String: String], environment: [String: String], file: String?,
        fileRequired: Bool, enforceRequired: Bool = true
    ) async throws(SettingsError) -> ResolvedSettings {
        var fileProvider: FileProvider<YAMLSnapshot>?
        var filePath: String?
        if let file {
            if FileManager.default.fileExists(atPath: file) {
                do {
                    fileProvider = try await FileProvider<YAMLSnapshot>(filePath: FilePath(file))
                    filePath = file
                } catch {
                    throw SettingsError("cannot read the configuration file \(file): \(error)")
                }
            } else if fileRequired {
                throw SettingsError("the configuration file \(file) does not exist")
            }
        }
        if let filePath { try checkFileKeys(keys, path: filePath) }
        let secrets = Set(keys.filter(\.secret).map(\.environmentVariable))
        let environmentProvider = KeyMappingProvider(
            upstream: EnvironmentVariablesProvider(
                environmentVariables: environment, secretsSpecifier: .specific(secrets)),
            keyMapper: { AbsoluteConfigKey(["touchstone"] + $0.components) })
        var commandLineValues: [AbsoluteConfigKey: ConfigValue] = [:]
        for key in keys {
            if let text = commandLine[key.name] {
                commandLineValues[absolute(key)] = ConfigValue(.string(text), isSecret: key.secret)
            }
        }
        let commandLineProvider = InMemoryProvider(name: "command line", values: commandLineValues)

        var entries: [ResolvedSettings.Entry] = []
        for key in keys {
            let found: (String, SettingSource)?
            do {
                if let text = try string(commandLineProvider, key) {
                    found = (text, .commandLine(option: key.option ?? key.name))
                } else if let text = try string(environmentProvider, key) {
                    found = (text, .environment(variable: key.environmentVariable))
                } else if let fileProvider, let filePath, let text = try string(fileProvider, key) {
                    found = (text, .file(path: filePath))
                } else {
                    found = key.defaultValue.map { ($0, .defaultValue) }
                }
            } catch {
                let origin = filePath.map { "the configuration file \($0)" } ?? "the environment"
                throw SettingsError("\(key.name) in \(origin) is not a single value: \(key.name) takes \(key.allowed)")
            }
            guard let (text, source) = found else {
                if key.required && enforceRequired {
                    throw SettingsError(
                        "\(key.name) is required: pass --\(key.option ?? key.name), set $\(key.environmentVariable) "
                            + "or put \(key.name) in the configuration file")
                }
                entries.append(.init(key: key, value: nil, source: .unset))
                continue
            }
            entries.append(.init(key: key, value: try key.parse(text, from: source), source: source))
        }
        return ResolvedSettings(entries: entries, file: filePath)
    }

    private static func absolute(_ key: SettingKey) -> AbsoluteConfigKey {
        AbsoluteConfigKey(key.name.split(separator: ".").map(String.init))
    }

    /// A key's value as text: scalars of any YAML type (`30`, `true`) read as their text.
    private static func string(_ provider: some ConfigProvider, _ key: SettingKey) throws -> String? {
        guard let value = try provider.value(forKey: absolute(key), type: .string).value else { return nil }
        switch value.content {
        case .string(let text): return text
        case .int(let value): return String(value)
        case .double(let value): return String(value)
        case .bool(let value): return String(value)
        default: return nil
        }
    }

    /// Refuses a file naming a key that is not declared (a typo would otherwise be ignored silently).
    static func checkFileKeys(_ keys: [SettingKey], path: String) throws(SettingsError) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        let declared = Set(keys.map(\.name))
        let groups = Set(keys.flatMap { key in
            let parts = key.name.split(separator: ".")
            return (1..<max(parts.count, 1)).map { parts.prefix($0).joined(separator: ".") }
        })
        for name in YAMLKeyPaths.paths(in: text) where !declared.contains(name) && !groups.contains(name) {
            let close = keys.map(\.name).min { distance($0, name) < distance($1, name) }
            throw SettingsError(
                "\(name) in the configuration file \(path) is not a known key"
                    + (close.map { ": did you mean \($0)?" } ?? ""))
        }
    }

    /// Levenshtein distance, for the "did you mean" of an unknown key.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return row[b.count]
    }
}
