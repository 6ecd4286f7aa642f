import Foundation
import InputLimits
import TestSupport
import Testing

@Suite struct JSONLimitsTests {
    let limits = JSONLimits(maxBytes: 64, maxDepth: 3)

    @Test func acceptsADocumentAtBothLimits() throws {
        try limits.check(#"[[{"a":1}]]"#)
        try limits.check(String(repeating: " ", count: 62) + "[]")
        try limits.check("")
        try limits.check("17")
    }

    @Test func refusesOneByteOverTheSize() {
        let text = String(repeating: " ", count: 63) + "1" + " "
        #expect(throws: JSONLimitError(limit: .bytes, maximum: 64, found: 65, offset: nil)) { try limits.check(text) }
        #expect(throws: JSONLimitError(limit: .bytes, maximum: 64, found: 65, offset: nil)) {
            try limits.check(Array(text.utf8))
        }
        #expect(throws: JSONLimitError(limit: .bytes, maximum: 64, found: 65, offset: nil)) {
            try limits.check(Data(text.utf8))
        }
    }

    @Test func refusesOneLevelOverTheDepthNamingTheByte() {
        #expect(throws: JSONLimitError(limit: .depth, maximum: 3, found: 4, offset: 8)) {
            try limits.check(#"{"a":[[ [1]]]}"#)
        }
    }

    @Test func sizeIsCheckedBeforeDepth() {
        let text = String(repeating: "[", count: 65)
        #expect(throws: JSONLimitError(limit: .bytes, maximum: 64, found: 65, offset: nil)) { try limits.check(text) }
    }

    @Test func bracketsInsideStringsDoNotCount() throws {
        try limits.check(#"["[[[[{{{{", "}}}}]]]]"]"#)
        // An escaped quote does not end the string; an escaped backslash before a quote does.
        try limits.check(#"["\"[[[[[", "\\"]"#)
        #expect(throws: JSONLimitError.self) { try limits.check(#"["\\", [[[1]]]]"#) }
    }

    @Test func strayClosersNeverLowerTheCountBelowZero() {
        #expect(throws: JSONLimitError(limit: .depth, maximum: 3, found: 4, offset: 11)) {
            try limits.check("]]]]}}}}[[[[")
        }
    }

    @Test func errorsAreOneLineNamingTheLimit() {
        let size = JSONLimitError(limit: .bytes, maximum: 1_048_576, found: 2_000_000, offset: nil)
        #expect(size.description == "JSON of 2000000 bytes is over the size limit of 1048576 bytes")
        let depth = JSONLimitError(limit: .depth, maximum: 32, found: 33, offset: 40)
        #expect(depth.description == "JSON nested deeper than the depth limit of 32 (at byte 40)")
        #expect(!size.description.contains("\n") && !depth.description.contains("\n"))
    }

    @Test func staticFormMatchesTheInstance() throws {
        try JSONLimits.check(Array("[[1]]".utf8), maxBytes: 5, maxDepth: 2)
        #expect(throws: JSONLimitError(limit: .depth, maximum: 1, found: 2, offset: 1)) {
            try JSONLimits.check(Array("[[1]]".utf8), maxBytes: 5, maxDepth: 1)
        }
    }

    /// Random documents with strings full of brackets, quotes and backslashes, encoded by `JSONEncoder`: the check
    /// passes exactly when the document's real nesting depth fits.
    @Test func agreesWithTheRealDepthOfEncodedDocuments() throws {
        var g = SeededGenerator(seed: 12)
        for _ in 0..<500 {
            let (value, depth) = Self.randomValue(budget: Int.random(in: 0...8, using: &g), using: &g)
            let bytes = try JSONEncoder().encode(value)
            let limit = Int.random(in: 0...8, using: &g)
            let fits = Result { try JSONLimits(maxBytes: .max, maxDepth: limit).check(bytes) }
            switch fits {
            case .success: #expect(depth <= limit, "\(String(decoding: bytes, as: UTF8.self))")
            case .failure(let error as JSONLimitError):
                #expect(depth > limit && error.found == limit + 1, "\(String(decoding: bytes, as: UTF8.self))")
            case .failure(let error): Issue.record(error)
            }
        }
    }

    /// Random bytes rich in the scan's special bytes (and in `z`/`Z`, which the eight-byte count may take for an
    /// opener), at every alignment: the check agrees with a byte-at-a-time reference, so the fast path never lets a
    /// deep document through.
    @Test func agreesWithAByteAtATimeReferenceOnRandomBytes() {
        var g = SeededGenerator(seed: 1212)
        let alphabet = Array("[{]}\"\\zZa ".utf8)
        for _ in 0..<5_000 {
            let bytes = (0..<Int.random(in: 0...40, using: &g)).map { _ in alphabet.randomElement(using: &g)! }
            let limit = Int.random(in: 0...6, using: &g)
            let expected = Self.referenceDepthError(bytes, maxDepth: limit)
            let found = Result { () throws(JSONLimitError) in try JSONLimits(maxBytes: 100, maxDepth: limit).check(bytes) }
            switch found {
            case .success: #expect(expected == nil, "\(String(decoding: bytes, as: UTF8.self)) limit \(limit)")
            case .failure(let error): #expect(expected == error, "\(String(decoding: bytes, as: UTF8.self)) limit \(limit)")
            }
        }
    }

    /// The rule, spelled out one byte at a time.
    static func referenceDepthError(_ bytes: [UInt8], maxDepth: Int) -> JSONLimitError? {
        var depth = 0
        var inString = false
        var escaped = false
        for (offset, byte) in bytes.enumerated() {
            switch (inString, escaped, Character(UnicodeScalar(byte))) {
            case (true, true, _): escaped = false
            case (true, false, "\\"): escaped = true
            case (true, false, "\""): inString = false
            case (true, false, _): break
            case (false, _, "\""): inString = true
            case (false, _, "["), (false, _, "{"):
                depth += 1
                if depth > maxDepth { return JSONLimitError(limit: .depth, maximum: maxDepth, found: depth, offset: offset) }
            case (false, _, "]"), (false, _, "}"): depth = max(0, depth - 1)
            default: break
            }
        }
        return nil
    }

    indirect enum Value: Encodable {
        case text(String), number(Int), array([Value]), object([String: Value])
        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .text(let s): try c.encode(s)
            case .number(let n): try c.encode(n)
            case .array(let a): try c.encode(a)
            case .object(let o): try c.encode(o)
            }
        }
    }

    static func randomText(using g: inout SeededGenerator) -> String {
        let pieces = ["[", "]", "{", "}", "\"", "\\", "\\\"", "a", "é", "\n", "\u{01}"]
        return (0..<Int.random(in: 0...6, using: &g)).map { _ in pieces.randomElement(using: &g)! }.joined()
    }

    /// A value and its nesting depth.
    static func randomValue(budget: Int, using g: inout SeededGenerator) -> (Value, Int) {
        if budget == 0 || Int.random(in: 0..<4, using: &g) == 0 {
            return Bool.random(using: &g)
                ? (.text(randomText(using: &g)), 0) : (.number(Int.random(in: -99...99, using: &g)), 0)
        }
        var children: [(Value, Int)] = []
        for _ in 0..<Int.random(in: 0...3, using: &g) {
            children.append(randomValue(budget: budget - 1, using: &g))
        }
        let depth = 1 + (children.map(\.1).max() ?? 0)
        if Bool.random(using: &g) { return (.array(children.map(\.0)), depth) }
        var object: [String: Value] = [:]
        for child in children { object[randomText(using: &g) + "\(object.count)"] = child.0 }
        return (.object(object), depth)
    }
}
