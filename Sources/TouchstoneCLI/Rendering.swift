import Domain
import Foundation
import EventStore
import Transport
import Projections

/// Plain-text tables and JSON output.
enum Render {
    /// Left-aligned columns separated by two spaces, aligned by terminal display width (``displayWidth(_:)``), so
    /// CJK and emoji cells keep the columns straight and are never cut.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        // Control characters from task names or commands must not forge rows or move the cursor.
        let rows = rows.map { $0.map(printable) }
        var widths = header.map(displayWidth)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], displayWidth(cell))
            }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                guard index < cells.count - 1, index < widths.count else { return cell }
                return cell + String(repeating: " ", count: max(0, widths[index] - displayWidth(cell)))
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    /// The columns a terminal gives the text: 2 for each East Asian wide or fullwidth character and each emoji shown
    /// as an emoji, 0 for combining marks and zero-width format characters, 1 otherwise; counted per grapheme
    /// cluster, so a ZWJ emoji sequence or a flag is one 2-column character. Ranges from Unicode's
    /// EastAsianWidth.txt (W and F) and the `Emoji_Presentation` property (UAX #11, UTS #51).
    static func displayWidth(_ text: String) -> Int {
        text.reduce(0) { $0 + characterWidth($1) }
    }

    static func characterWidth(_ character: Character) -> Int {
        guard let first = character.unicodeScalars.first else { return 0 }
        if character.unicodeScalars.contains("\u{FE0F}") || first.properties.isEmojiPresentation { return 2 }
        switch first.properties.generalCategory {
        case .nonspacingMark, .enclosingMark, .format: return 0
        default: break
        }
        switch first.value {
        case 0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xA000...0xA4CF,
            0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60, 0xFFE0...0xFFE6, 0x20000...0x2FFFD,
            0x30000...0x3FFFD:
            return 2
        default:
            return 1
        }
    }

    /// The text with control characters shown as `\n`, `\t` or `\u{…}`.
    static func printable(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return text }
        return String(
            text.unicodeScalars.map { scalar -> String in
                guard scalar.properties.generalCategory == .control else { return String(scalar) }
                switch scalar {
                case "\n": return "\\n"
                case "\t": return "\\t"
                default: return "\\u{\(String(scalar.value, radix: 16))}"
                }
            }.joined())
    }

    /// Pretty JSON with sorted keys and ISO 8601 dates, where every struct carries every field: an empty optional
    /// is `null`, never left out, so scripts can rely on the keys (``withNulls(_:for:)``).
    static func json(_ value: some Encodable) -> String { json(value, pretty: true) }

    /// ``json(_:)`` on one line (`events --follow --format json`: one object per line).
    static func jsonLine(_ value: some Encodable) -> String { json(value, pretty: false) }

    /// The encoder of everything the CLI prints as JSON: sorted keys, times in ISO 8601 with milliseconds.
    static func displayEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(time(date))
        }
        encoder.dataEncodingStrategy = .base64
        return encoder
    }

    private static func json(_ value: some Encodable, pretty: Bool) -> String {
        let encoder = displayEncoder()
        guard let data = try? encoder.encode(value) else { return "null" }
        var options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed]
        if pretty { options.insert(.prettyPrinted) }
        guard let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]),
            let filled = try? JSONSerialization.data(withJSONObject: withNulls(object, for: value), options: options)
        else { return String(decoding: data, as: UTF8.self) }
        return String(decoding: filled, as: UTF8.self)
    }

    /// The decoded JSON of `value` with `null` for each stored optional property that is `nil` (the synthesized
    /// `Encodable` leaves those keys out), found by reflection on `value`; arrays and nested structs likewise.
    static func withNulls(_ json: Any, for value: Any) -> Any {
        let mirror = Mirror(reflecting: value)
        switch mirror.displayStyle {
        case .optional:
            guard let wrapped = mirror.children.first?.value else { return json }
            return withNulls(json, for: wrapped)
        case .struct:
            guard var object = json as? [String: Any] else { return json }
            for child in mirror.children {
                guard let label = child.label else { continue }
                let inner = Mirror(reflecting: child.value)
                if inner.displayStyle == .optional, inner.children.isEmpty {
                    if object[label] == nil { object[label] = NSNull() }
                } else if let nested = object[label] {
                    object[label] = withNulls(nested, for: child.value)
                }
            }
            return object
        case .collection:
            guard let array = json as? [Any], array.count == mirror.children.count else { return json }
            return zip(array, mirror.children).map { withNulls($0, for: $1.value) }
        default:
            return json
        }
    }

    static func time(_ date: Date?) -> String {
        guard let date else { return "-" }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    static func duration(from start: Date?, to end: Date?) -> String {
        guard let start else { return "-" }
        let seconds = (end ?? Date()).timeIntervalSince(start)
        if seconds < 60 { return String(format: "%.1fs", seconds) }
        return String(format: "%dm%02ds", Int(seconds) / 60, Int(seconds) % 60)
    }
}

/// POSIX shell quoting, for printing commands that can be pasted back into a shell.
enum ShellQuoting {
    /// The word as is when it holds only letters, digits and `-_./:=@%+,`; else in single quotes, with each `'`
    /// written as `'\''`. The empty word is `''`.
    static func quote(_ word: String) -> String {
        let safe = !word.isEmpty && word.unicodeScalars.allSatisfy { scalar in
            scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "-_./:=@%+,".unicodeScalars.contains(scalar)
        }
        return safe ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The words quoted and joined with spaces.
    static func join(_ words: [String]) -> String { words.map(quote).joined(separator: " ") }
}

extension String {
    /// `nil` for the empty string, for `?? "-"` in table cells.
    var nilIfEmpty: String? { isEmpty ? nil : self }
}
