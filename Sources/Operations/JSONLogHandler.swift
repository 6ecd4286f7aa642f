import Foundation
import Logging
import Synchronization

/// A swift-log handler writing one JSON object per line to standard error, for log shippers
/// (`--log-format json`): `{"timestamp":"2026-12-01T23:59:01.123Z","level":"info","label":"touchstone.backend",
/// "message":"backend starting","metadata":{"state":"/var/lib/touchstone"},"source":"Orchestrator"}`.
///
/// Metadata values are strings, or arrays and objects of them (swift-log's `MetadataValue`); keys are sorted so
/// that equal records print equally. Each record is one `write(2)` of one line.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let write: @Sendable (String) -> Void

    /// - Parameters:
    ///   - label: The logger's label.
    ///   - write: Where a finished line goes (standard error by default; tests collect lines).
    public init(label: String, write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        var line = "{\"timestamp\":\(Self.quote(Self.timestamp(Date())))"
        line += ",\"level\":\(Self.quote(event.level.rawValue)),\"label\":\(Self.quote(label))"
        line += ",\"message\":\(Self.quote(event.message.description))"
        if !merged.isEmpty { line += ",\"metadata\":" + Self.encode(.dictionary(merged)) }
        line += ",\"source\":\(Self.quote(event.source))}\n"
        write(line)
    }

    /// Writes a line to standard error in one call.
    public static let standardError: @Sendable (String) -> Void = { line in
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }

    static func encode(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let text): quote(text)
        case .stringConvertible(let convertible): quote(convertible.description)
        case .array(let values): "[" + values.map(encode).joined(separator: ",") + "]"
        case .dictionary(let values):
            "{" + values.sorted { $0.key < $1.key }.map { quote($0.key) + ":" + encode($0.value) }.joined(separator: ",")
                + "}"
        }
    }

    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}

/// How a binary's logs look: `text` (swift-log's stream handler) or `json` (``JSONLogHandler``).
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json
}

/// Bootstraps swift-log once per process (the executables call it after reading their configuration).
public enum LogBootstrap {
    private static let done = Mutex(false)

    /// Installs the handler for `format` at `level`; a second call does nothing (swift-log allows one bootstrap).
    public static func bootstrap(format: LogFormat, level: Logger.Level) {
        let first = done.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            case .json:
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }
}
