import Foundation

/// Renders a declaration as documentation, and a resolution for `config show`.
public enum SettingsRendering {
    /// The Markdown table of docs/configuration.md: key, option, environment variable, type, unit, default, range,
    /// summary. Generated from the declaration (`touchstone config keys`), so that the document cannot drift.
    public static func markdownTable(_ keys: [SettingKey]) -> String {
        var lines = [
            "| key | option | environment | type | unit | default | allowed | meaning |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for key in keys {
            let type: String
            switch key.kind {
            case .text, .loopbackAddress: type = "string"
            case .choice: type = "string"
            case .integer: type = "integer"
            case .number: type = "number"
            case .flag: type = "boolean"
            }
            let defaultText =
                key.defaultValue.map { "`\($0)`" } ?? (key.required ? "required" : "none")
            let cells = [
                "`\(key.name)`", key.option.map { "`--\($0)`" } ?? "", "`\(key.environmentVariable)`",
                type + (key.secret ? " (secret)" : ""), key.unit ?? "", defaultText, key.allowed, key.summary,
            ]
            lines.append("| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `config show`'s table: each key, its value (`<secret>` for a secret that is set) and its source.
    public static func table(_ settings: ResolvedSettings) -> String {
        let rows = settings.entries.map { entry in
            [entry.key.name, shown(entry), entry.source.description]
        }
        let header = ["KEY", "VALUE", "SOURCE"]
        var widths = header.map(\.count)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        var out = [line(header)] + rows.map(line)
        out.append("(configuration file: \(settings.file ?? "none"))")
        return out.joined(separator: "\n") + "\n"
    }

    /// `config show --format json`: `{"file": …, "keys": [{"key", "value", "source", "secret"}]}`, secrets as
    /// `"<secret>"`.
    public static func json(_ settings: ResolvedSettings) -> String {
        func quote(_ text: String) -> String {
            var out = "\""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + "\""
        }
        let keys = settings.entries.map { entry in
            let value: String
            switch entry.value {
            case nil: value = "null"
            case _ where entry.key.secret: value = quote("<secret>")
            case .text(let text): value = quote(text)
            case .integer(let number): value = String(number)
            case .number(let number): value = SettingKey.format(number)
            case .flag(let flag): value = String(flag)
            }
            return "{\"key\":\(quote(entry.key.name)),\"value\":\(value),\"source\":\(quote(entry.source.description)),"
                + "\"secret\":\(entry.key.secret)}"
        }
        return "{\"file\":\(settings.file.map(quote) ?? "null"),\"keys\":[\(keys.joined(separator: ","))]}\n"
    }

    private static func shown(_ entry: ResolvedSettings.Entry) -> String {
        guard let value = entry.value else { return "-" }
        return entry.key.secret ? "<secret>" : value.description
    }
}
