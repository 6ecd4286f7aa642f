import Foundation

/// The size and nesting limits a JSON document from outside the process must fit before it is decoded (issue 12).
///
/// The check is a pure pre-scan over the bytes: the byte count is compared first (O(1)), then one pass tracks
/// string literals (with backslash escapes) and counts `[` and `{` outside them, stopping at the first container
/// deeper than ``maxDepth``. It does not validate the JSON otherwise: the decoder that runs next reports malformed
/// input. Decoders recurse per nesting level and index bytes with 32-bit offsets, so this check is what keeps a
/// hostile message from exhausting the stack or overflowing an offset.
///
/// Each decode point names its own limits (``Wire``'s envelopes, the log's event payloads, SQS and Docker answers);
/// `docs/input-limits.md` lists them with their sources.
public struct JSONLimits: Sendable, Equatable, CustomStringConvertible {
    /// The most bytes of UTF-8 a document may have.
    public var maxBytes: Int
    /// The most containers (`[` or `{`) a value may sit inside; `{"a":[1]}` has depth 2, `1` depth 0.
    public var maxDepth: Int

    /// - Parameters:
    ///   - maxBytes: At least 0.
    ///   - maxDepth: At least 0.
    public init(maxBytes: Int, maxDepth: Int) {
        precondition(maxBytes >= 0 && maxDepth >= 0, "JSON limits are not negative")
        self.maxBytes = maxBytes
        self.maxDepth = maxDepth
    }

    public var description: String { "at most \(maxBytes) bytes, nested at most \(maxDepth) deep" }

    /// Checks a document against the limits.
    ///
    /// - Parameter bytes: The document's UTF-8 bytes.
    /// - Throws: ``JSONLimitError`` naming the limit that the document exceeds; the size is checked first.
    public func check(_ bytes: UnsafeRawBufferPointer) throws(JSONLimitError) {
        guard bytes.count <= maxBytes else {
            throw JSONLimitError(limit: .bytes, maximum: maxBytes, found: bytes.count, offset: nil)
        }
        // Fast path: a document with no more `[` and `{` bytes in all than maxDepth cannot nest deeper; the log's
        // payloads take it (issue 11's rebuild rate counts every byte). `[` is 0x5B and `{` 0x7B, and no other byte
        // ORed with 0x20 gives 0x7B; eight bytes at a time, a zero-byte test counts them. It may count a `z`/`Z` right
        // after one as well (the test's borrow), which only sends a document to the full scan below.
        var openers = 0
        var index = 0
        while index + 8 <= bytes.count {
            let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            let y = (word | 0x2020_2020_2020_2020) ^ 0x7B7B_7B7B_7B7B_7B7B
            openers &+= ((y &- 0x0101_0101_0101_0101) & ~y & 0x8080_8080_8080_8080).nonzeroBitCount
            index += 8
        }
        while index < bytes.count {
            openers &+= (bytes[index] | 0x20) == 0x7B ? 1 : 0
            index += 1
        }
        if openers <= maxDepth { return }
        var depth = 0
        var inString = false
        var escaped = false
        for offset in 0..<bytes.count {
            let byte = bytes[offset]
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                guard depth <= maxDepth else {
                    throw JSONLimitError(limit: .depth, maximum: maxDepth, found: depth, offset: offset)
                }
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                // A stray closer is the decoder's to report; never let it lower the count below zero.
                depth = max(0, depth - 1)
            default:
                break
            }
        }
    }

    /// Checks `Data`; as the raw-buffer `check(_:)`.
    public func check(_ data: Data) throws(JSONLimitError) {
        let result = data.withUnsafeBytes { bytes in Result { () throws(JSONLimitError) in try check(bytes) } }
        try result.get()
    }

    /// Checks a byte array; as the raw-buffer `check(_:)`.
    public func check(_ bytes: [UInt8]) throws(JSONLimitError) {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(JSONLimitError) in try check(raw) } }
        try result.get()
    }

    /// Checks text by its UTF-8 bytes; as the raw-buffer `check(_:)`.
    public func check(_ text: String) throws(JSONLimitError) {
        guard text.utf8.count <= maxBytes else {
            throw JSONLimitError(limit: .bytes, maximum: maxBytes, found: text.utf8.count, offset: nil)
        }
        var copy = text
        let result = copy.withUTF8 { utf8 in
            Result { () throws(JSONLimitError) in try check(UnsafeRawBufferPointer(utf8)) }
        }
        try result.get()
    }

    /// Checks a document against explicit limits: `JSONLimits(maxBytes:maxDepth:).check(bytes)`.
    ///
    /// - Throws: ``JSONLimitError``.
    public static func check(_ bytes: [UInt8], maxBytes: Int, maxDepth: Int) throws(JSONLimitError) {
        try JSONLimits(maxBytes: maxBytes, maxDepth: maxDepth).check(bytes)
    }
}

/// A JSON document over one of its ``JSONLimits``; the description is one line naming the limit.
public struct JSONLimitError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Which limit.
    public enum Limit: String, Sendable, Equatable {
        /// ``JSONLimits/maxBytes``.
        case bytes
        /// ``JSONLimits/maxDepth``.
        case depth
    }

    public var limit: Limit
    /// The limit's value.
    public var maximum: Int
    /// The size in bytes, or the first depth over the limit.
    public var found: Int
    /// For `.depth`: the byte offset of the container that went over.
    public var offset: Int?

    public init(limit: Limit, maximum: Int, found: Int, offset: Int?) {
        self.limit = limit
        self.maximum = maximum
        self.found = found
        self.offset = offset
    }

    public var description: String {
        switch limit {
        case .bytes:
            return "JSON of \(found) bytes is over the size limit of \(maximum) bytes"
        case .depth:
            return "JSON nested deeper than the depth limit of \(maximum) (at byte \(offset ?? 0))"
        }
    }
}
