import Foundation

/// A JSON decoder for the log's payloads and read-model rows, several times faster than Foundation's `JSONDecoder`
/// (issue 11: a rebuild must fold ≥ 500,000 events/s, and `JSONDecoder` folds about 70,000 here).
///
/// It decodes exactly what ``DomainEventCodec/makeDecoder()`` decodes, with the same configuration: keys as written
/// (no key strategy), dates as Unix milliseconds (`Date(timeIntervalSince1970: ms / 1000)`, as `JSONDecoder`'s
/// `.millisecondsSince1970`), data as base64. `DomainTests` compare it with `JSONDecoder` over every event type.
///
/// How: one pass over the bytes builds a flat "tape" of nodes (kind, byte range, index of the next sibling); the
/// `Decoder` containers then walk the tape, converting only the values asked for. Strings without escapes are
/// validated and copied in one step. `codingPath` is not tracked (always empty): errors name the key and the byte
/// offset in the payload instead.
///
/// Limits: nesting depth ≤ 512 (deeper input throws); numbers that are not integers are parsed by the standard
/// library's correctly rounded `Double(_:)`, as `JSONDecoder` does.
public struct FastJSONDecoder: Sendable {
    public init() {}

    /// Decodes a value of `type` from UTF-8 JSON.
    ///
    /// - Throws: `DecodingError` (`.dataCorrupted` for malformed JSON with the byte offset, `.keyNotFound`,
    ///   `.typeMismatch`, `.valueNotFound`) as `JSONDecoder` would for the same input.
    public func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try data.withUnsafeBytes { try decode(type, from: $0) }
    }

    /// Decodes from bytes that stay valid for the duration of the call (e.g. an SQLite column's blob).
    public func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws -> T {
        var parser = TapeParser(bytes: bytes)
        try parser.parseDocument()
        let tape = Tape(bytes: bytes, nodes: parser.nodes)
        return try TapeDecoder(tape: tape, node: 0).unbox(T.self, key: nil)
    }
}

// MARK: Tape

enum NodeKind: UInt8 { case null, `true`, `false`, number, string, escapedString, array, object }

/// One JSON value: for strings the range between the quotes, for numbers the literal; `next` is the index of the
/// node after this value and everything inside it; `count` is the element (array) or pair (object) count.
struct TapeNode {
    var kind: NodeKind
    var start: Int32
    var end: Int32
    var next: Int32
    var count: Int32
}

final class Tape {
    let bytes: UnsafeRawBufferPointer
    let nodes: [TapeNode]

    init(bytes: UnsafeRawBufferPointer, nodes: [TapeNode]) {
        self.bytes = bytes
        self.nodes = nodes
    }

    func corrupt(_ message: String) -> DecodingError {
        DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: message))
    }

    func describe(_ node: Int) -> String {
        switch nodes[node].kind {
        case .null: return "null"
        case .true, .false: return "a boolean"
        case .number: return "a number"
        case .string, .escapedString: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    func mismatch(_ type: Any.Type, _ node: Int, _ key: (any CodingKey)?) -> DecodingError {
        let at = key.map { "key \"\($0.stringValue)\"" } ?? "the value"
        let context = DecodingError.Context(
            codingPath: key.map { [$0] } ?? [],
            debugDescription: "expected \(type) at \(at) (byte \(nodes[node].start)), found \(describe(node))")
        return nodes[node].kind == .null
            ? DecodingError.valueNotFound(type, context) : DecodingError.typeMismatch(type, context)
    }

    // MARK: Scalars

    func string(_ node: Int, key: (any CodingKey)?) throws -> String {
        let n = nodes[node]
        switch n.kind {
        case .string:
            let slice = UnsafeRawBufferPointer(rebasing: bytes[Int(n.start)..<Int(n.end)])
            guard let text = String(validating: slice, as: UTF8.self) else {
                throw corrupt("invalid UTF-8 in the string at byte \(n.start)")
            }
            return text
        case .escapedString:
            return try unescape(node)
        default:
            throw mismatch(String.self, node, key)
        }
    }

    private func unescape(_ node: Int) throws -> String {
        let n = nodes[node]
        var out: [UInt8] = []
        out.reserveCapacity(Int(n.end - n.start))
        var i = Int(n.start)
        let end = Int(n.end)
        func hex4(_ at: Int) throws -> UInt32 {
            guard at + 4 <= end else { throw corrupt("truncated \\u escape at byte \(at)") }
            var value: UInt32 = 0
            for j in at..<(at + 4) {
                let c = bytes[j]
                value <<= 4
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): value |= UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): value |= UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): value |= UInt32(c - UInt8(ascii: "A") + 10)
                default: throw corrupt("invalid \\u escape at byte \(at)")
                }
            }
            return value
        }
        while i < end {
            let c = bytes[i]
            guard c == UInt8(ascii: "\\") else {
                out.append(c)
                i += 1
                continue
            }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4(i)
                i += 4
                if (0xD800...0xDBFF).contains(scalar) {
                    guard i + 6 <= end, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw corrupt("unpaired UTF-16 surrogate at byte \(i)")
                    }
                    let low = try hex4(i + 2)
                    guard (0xDC00...0xDFFF).contains(low) else { throw corrupt("unpaired UTF-16 surrogate at byte \(i)") }
                    i += 6
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw corrupt("unpaired UTF-16 surrogate at byte \(i)")
                }
                guard let unicode = Unicode.Scalar(scalar) else { throw corrupt("invalid \\u escape at byte \(i)") }
                out.append(contentsOf: Array(String(Character(unicode)).utf8))
            default:
                throw corrupt("invalid escape \\\(Character(Unicode.Scalar(e))) at byte \(i - 2)")
            }
        }
        guard let text = String(validating: out, as: UTF8.self) else {
            throw corrupt("invalid UTF-8 in the string at byte \(n.start)")
        }
        return text
    }

    func bool(_ node: Int, key: (any CodingKey)?) throws -> Bool {
        switch nodes[node].kind {
        case .true: return true
        case .false: return false
        default: throw mismatch(Bool.self, node, key)
        }
    }

    /// An integer literal as Int64; `nil` when the literal has a fraction or exponent, or overflows.
    private func exactInteger(_ node: Int) -> Int64? {
        let n = nodes[node]
        var i = Int(n.start)
        let end = Int(n.end)
        var negative = false
        if bytes[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        guard i < end else { return nil }
        var value: Int64 = 0
        while i < end {
            let digit = bytes[i] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (plus, o2) = negative ? times.subtractingReportingOverflow(Int64(digit)) : times.addingReportingOverflow(Int64(digit))
            if o1 || o2 { return nil }
            value = plus
            i += 1
        }
        return value
    }

    func double(_ node: Int, key: (any CodingKey)?) throws -> Double {
        guard nodes[node].kind == .number else { throw mismatch(Double.self, node, key) }
        if let integer = exactInteger(node), integer.magnitude < (1 << 53) { return Double(integer) }
        let n = nodes[node]
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[Int(n.start)..<Int(n.end)]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else {
            throw corrupt("the number \(text) at byte \(n.start) is not representable as Double")
        }
        return value
    }

    func integer<I: FixedWidthInteger>(_: I.Type, _ node: Int, key: (any CodingKey)?) throws -> I {
        guard nodes[node].kind == .number else { throw mismatch(I.self, node, key) }
        if let integer = exactInteger(node), let exact = I(exactly: integer) { return exact }
        // A fraction or exponent that still names an integer (e.g. 1e3), or a UInt64 beyond Int64.
        let n = nodes[node]
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[Int(n.start)..<Int(n.end)]), as: UTF8.self)
        if let exact = I(text) { return exact }
        if let double = Double(text), let exact = I(exactly: double) { return exact }
        throw DecodingError.dataCorrupted(
            .init(
                codingPath: key.map { [$0] } ?? [],
                debugDescription: "the number \(text) at byte \(n.start) does not fit in \(I.self)"))
    }

    /// Whether an object key node equals `key` (byte comparison; escaped keys are unescaped first).
    func keyMatches(_ node: Int, _ key: String) -> Bool {
        let n = nodes[node]
        if n.kind == .escapedString { return (try? unescape(node)) == key }
        let length = Int(n.end - n.start)
        var key = key
        return key.withUTF8 { utf8 in
            utf8.count == length && (length == 0 || memcmp(utf8.baseAddress!, bytes.baseAddress! + Int(n.start), length) == 0)
        }
    }
}

// MARK: Parser

struct TapeParser {
    let bytes: UnsafeRawBufferPointer
    var nodes: [TapeNode] = []
    var index = 0
    var depth = 0
    static let maxDepth = 512

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        nodes.reserveCapacity(max(16, bytes.count / 8))
    }

    func corrupt(_ message: String) -> DecodingError {
        DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: message))
    }

    mutating func parseDocument() throws {
        try parseValue()
        skipWhitespace()
        guard index == bytes.count else { throw corrupt("unexpected byte after the JSON value at byte \(index)") }
    }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    mutating func expect(_ byte: UInt8, _ what: String) throws {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == byte else {
            throw corrupt("expected \(what) at byte \(index)")
        }
        index += 1
    }

    mutating func parseValue() throws {
        skipWhitespace()
        guard index < bytes.count else { throw corrupt("unexpected end of JSON at byte \(index)") }
        switch bytes[index] {
        case UInt8(ascii: "{"): try parseContainer(object: true)
        case UInt8(ascii: "["): try parseContainer(object: false)
        case UInt8(ascii: "\""): try parseString()
        case UInt8(ascii: "t"): try parseLiteral("true", .true)
        case UInt8(ascii: "f"): try parseLiteral("false", .false)
        case UInt8(ascii: "n"): try parseLiteral("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try parseNumber()
        default: throw corrupt("unexpected byte \(bytes[index]) at byte \(index)")
        }
    }

    mutating func append(_ kind: NodeKind, _ start: Int, _ end: Int) {
        let position = Int32(nodes.count)
        nodes.append(TapeNode(kind: kind, start: Int32(start), end: Int32(end), next: position + 1, count: 0))
    }

    mutating func parseLiteral(_ literal: StaticString, _ kind: NodeKind) throws {
        let length = literal.utf8CodeUnitCount
        guard index + length <= bytes.count,
            memcmp(bytes.baseAddress! + index, literal.utf8Start, length) == 0
        else { throw corrupt("invalid literal at byte \(index)") }
        append(kind, index, index + length)
        index += length
    }

    mutating func parseNumber() throws {
        let start = index
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        let integerStart = index
        while index < bytes.count, bytes[index] &- UInt8(ascii: "0") < 10 { index += 1 }
        let integerDigits = index - integerStart
        guard integerDigits > 0, !(integerDigits > 1 && bytes[integerStart] == UInt8(ascii: "0")) else {
            throw corrupt("invalid number at byte \(start)")
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            let fractionStart = index
            while index < bytes.count, bytes[index] &- UInt8(ascii: "0") < 10 { index += 1 }
            guard index > fractionStart else { throw corrupt("invalid number at byte \(start)") }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            let exponentStart = index
            while index < bytes.count, bytes[index] &- UInt8(ascii: "0") < 10 { index += 1 }
            guard index > exponentStart else { throw corrupt("invalid number at byte \(start)") }
        }
        append(.number, start, index)
    }

    mutating func parseString() throws {
        index += 1  // the opening quote
        let start = index
        var escaped = false
        while index < bytes.count {
            let c = bytes[index]
            if c == UInt8(ascii: "\"") {
                append(escaped ? .escapedString : .string, start, index)
                index += 1
                return
            }
            if c == UInt8(ascii: "\\") {
                escaped = true
                index += 2
                continue
            }
            guard c >= 0x20 else { throw corrupt("unescaped control character in a string at byte \(index)") }
            index += 1
        }
        throw corrupt("unterminated string starting at byte \(start - 1)")
    }

    mutating func parseContainer(object: Bool) throws {
        depth += 1
        guard depth <= Self.maxDepth else { throw corrupt("JSON nested deeper than \(Self.maxDepth) at byte \(index)") }
        let container = nodes.count
        append(object ? .object : .array, index, index)
        index += 1
        let close = object ? UInt8(ascii: "}") : UInt8(ascii: "]")
        var count: Int32 = 0
        skipWhitespace()
        if index < bytes.count, bytes[index] == close {
            index += 1
        } else {
            while true {
                if object {
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                        throw corrupt("expected a key at byte \(index)")
                    }
                    try parseString()
                    try expect(UInt8(ascii: ":"), "':'")
                }
                try parseValue()
                count += 1
                skipWhitespace()
                guard index < bytes.count else { throw corrupt("unexpected end of JSON at byte \(index)") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard bytes[index] == close else { throw corrupt("expected ',' or the end of the container at byte \(index)") }
                index += 1
                break
            }
        }
        nodes[container].end = Int32(index)
        nodes[container].next = Int32(nodes.count)
        nodes[container].count = count
        depth -= 1
    }
}

// MARK: Decoder

struct TapeDecoder: Decoder, SingleValueDecodingContainer {
    let tape: Tape
    let node: Int

    init(tape: Tape, node: Int) {
        self.tape = tape
        self.node = node
    }

    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    /// Decodes `T` at this node, with `JSONDecoder`'s special cases for `Date` (milliseconds) and `Data` (base64).
    func unbox<T: Decodable>(_: T.Type, key: (any CodingKey)?) throws -> T {
        if T.self == String.self { return try tape.string(node, key: key) as! T }
        if T.self == Int.self { return try tape.integer(Int.self, node, key: key) as! T }
        if T.self == Int64.self { return try tape.integer(Int64.self, node, key: key) as! T }
        if T.self == Bool.self { return try tape.bool(node, key: key) as! T }
        if T.self == Date.self {
            let milliseconds = try tape.double(node, key: key)
            return Date(timeIntervalSince1970: milliseconds / 1000.0) as! T
        }
        if T.self == Data.self {
            let text = try tape.string(node, key: key)
            guard let data = Data(base64Encoded: text) else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: key.map { [$0] } ?? [], debugDescription: "encountered data is not valid Base64"))
            }
            return data as! T
        }
        if T.self == URL.self {
            let text = try tape.string(node, key: key)
            guard let url = URL(string: text) else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: key.map { [$0] } ?? [], debugDescription: "invalid URL string"))
            }
            return url as! T
        }
        return try T(from: self)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard tape.nodes[node].kind == .object else { throw tape.mismatch([String: Any].self, node, nil) }
        return KeyedDecodingContainer(TapeKeyedContainer<Key>(tape: tape, object: node))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard tape.nodes[node].kind == .array else { throw tape.mismatch([Any].self, node, nil) }
        return TapeUnkeyedContainer(tape: tape, array: node)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    func decodeNil() -> Bool { tape.nodes[node].kind == .null }
    func decode(_: Bool.Type) throws -> Bool { try tape.bool(node, key: nil) }
    func decode(_: String.Type) throws -> String { try tape.string(node, key: nil) }
    func decode(_: Double.Type) throws -> Double { try tape.double(node, key: nil) }
    func decode(_: Float.Type) throws -> Float { Float(try tape.double(node, key: nil)) }
    func decode(_: Int.Type) throws -> Int { try tape.integer(Int.self, node, key: nil) }
    func decode(_: Int8.Type) throws -> Int8 { try tape.integer(Int8.self, node, key: nil) }
    func decode(_: Int16.Type) throws -> Int16 { try tape.integer(Int16.self, node, key: nil) }
    func decode(_: Int32.Type) throws -> Int32 { try tape.integer(Int32.self, node, key: nil) }
    func decode(_: Int64.Type) throws -> Int64 { try tape.integer(Int64.self, node, key: nil) }
    func decode(_: UInt.Type) throws -> UInt { try tape.integer(UInt.self, node, key: nil) }
    func decode(_: UInt8.Type) throws -> UInt8 { try tape.integer(UInt8.self, node, key: nil) }
    func decode(_: UInt16.Type) throws -> UInt16 { try tape.integer(UInt16.self, node, key: nil) }
    func decode(_: UInt32.Type) throws -> UInt32 { try tape.integer(UInt32.self, node, key: nil) }
    func decode(_: UInt64.Type) throws -> UInt64 { try tape.integer(UInt64.self, node, key: nil) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try unbox(T.self, key: nil) }
}

struct TapeKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let tape: Tape
    let object: Int

    var codingPath: [any CodingKey] { [] }

    var allKeys: [Key] {
        var keys: [Key] = []
        var child = object + 1
        for _ in 0..<tape.nodes[object].count {
            if let text = try? tape.string(child, key: nil), let key = Key(stringValue: text) { keys.append(key) }
            child = Int(tape.nodes[child + 1].next)
        }
        return keys
    }

    /// The value node of `key`, or `nil` when absent. Of duplicate keys the first wins, as in Foundation's
    /// `JSONDecoder` (the `events` fuzz target found the two paths disagreeing when the last won).
    func find(_ key: Key) -> Int? {
        let name = key.stringValue
        var child = object + 1
        for _ in 0..<tape.nodes[object].count {
            if tape.keyMatches(child, name) { return child + 1 }
            child = Int(tape.nodes[child + 1].next)
        }
        return nil
    }

    func value(_ key: Key) throws -> Int {
        guard let node = find(key) else {
            throw DecodingError.keyNotFound(
                key, .init(codingPath: [], debugDescription: "no value for key \"\(key.stringValue)\""))
        }
        return node
    }

    func contains(_ key: Key) -> Bool { find(key) != nil }

    func decodeNil(forKey key: Key) throws -> Bool { tape.nodes[try value(key)].kind == .null }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try TapeDecoder(tape: tape, node: try value(key)).unbox(T.self, key: key)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let node = find(key), tape.nodes[node].kind != .null else { return nil }
        return try TapeDecoder(tape: tape, node: node).unbox(T.self, key: key)
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decode(type as Bool.Type, key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try decode(type as String.Type, key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decode(type as Double.Type, key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try decode(type as Float.Type, key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try decode(type as Int.Type, key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try decode(type as Int8.Type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try decode(type as Int16.Type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try decode(type as Int32.Type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try decode(type as Int64.Type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try decode(type as UInt.Type, key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try decode(type as UInt8.Type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try decode(type as UInt16.Type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try decode(type as UInt32.Type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try decode(type as UInt64.Type, key) }

    private func decode<T: Decodable>(_: T.Type, _ key: Key) throws -> T {
        try TapeDecoder(tape: tape, node: try value(key)).unbox(T.self, key: key)
    }

    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try present(type, key) }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try present(type, key) }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try present(type, key) }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try present(type, key) }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try present(type, key) }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try present(type, key) }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try present(type, key) }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try present(type, key) }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try present(type, key) }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try present(type, key) }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try present(type, key) }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try present(type, key) }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try present(type, key) }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try present(type, key) }

    private func present<T: Decodable>(_: T.Type, _ key: Key) throws -> T? {
        guard let node = find(key), tape.nodes[node].kind != .null else { return nil }
        return try TapeDecoder(tape: tape, node: node).unbox(T.self, key: key)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try TapeDecoder(tape: tape, node: try value(key)).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try TapeDecoder(tape: tape, node: try value(key)).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        TapeDecoder(tape: tape, node: find(Key(stringValue: "super")!) ?? object)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder { TapeDecoder(tape: tape, node: try value(key)) }
}

struct TapeUnkeyedContainer: UnkeyedDecodingContainer {
    let tape: Tape
    let array: Int
    var currentIndex = 0
    var node: Int

    init(tape: Tape, array: Int) {
        self.tape = tape
        self.array = array
        node = array + 1
    }

    var codingPath: [any CodingKey] { [] }
    var count: Int? { Int(tape.nodes[array].count) }
    var isAtEnd: Bool { currentIndex >= Int(tape.nodes[array].count) }

    mutating func next() throws -> Int {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(
                Any.self, .init(codingPath: [], debugDescription: "the array at byte \(tape.nodes[array].start) is at its end"))
        }
        let current = node
        node = Int(tape.nodes[node].next)
        currentIndex += 1
        return current
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, tape.nodes[node].kind == .null else { return false }
        _ = try next()
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try TapeDecoder(tape: tape, node: try next()).unbox(T.self, key: nil)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try TapeDecoder(tape: tape, node: try next()).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try TapeDecoder(tape: tape, node: try next()).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder { TapeDecoder(tape: tape, node: try next()) }
}
