import Domain
import Foundation
import EventStore
import Transport
import Projections

/// Plain-text tables and JSON output.
enum Render {
    /// Left-aligned columns separated by two spaces.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        // Control characters from task names or commands must not forge rows or move the cursor.
        let rows = rows.map { $0.map(printable) }
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
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

    /// Pretty JSON with sorted keys and ISO 8601 dates.
    static func json(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(time(date))
        }
        return String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self)
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
