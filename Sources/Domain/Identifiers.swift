import Foundation

/// The name of an in-house server, e.g. `gpu-07` or `dgx1.lab.example.com`: what a hostname looks like, 1–63
/// characters of lower-case ASCII letters, digits, `-` and `.`, starting and ending with a letter or digit, with no
/// `..` (lower case only: hostnames are case-insensitive, so `GPU-1` and `gpu-1` must not be two servers).
///
/// Queue names allow no `.`: ``queueNameComponent`` maps the name to characters SQS allows, without collisions.
public struct ServerID: RawRepresentable, Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public let rawValue: String

    /// The rule, for error messages.
    public static let shape = "1–63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit"

    /// Validates a server name.
    ///
    /// - Returns: `nil` when `rawValue` is not a valid server name.
    public init?(rawValue: String) {
        guard Self.isValid(rawValue) else { return nil }
        self.rawValue = rawValue
    }

    /// Whether `name` is 1–63 characters of `a-z0-9-.`, starting and ending with a letter or digit, without `..`.
    public static func isValid(_ name: String) -> Bool {
        let scalars = name.unicodeScalars
        guard let first = scalars.first, let last = scalars.last, scalars.count <= 63 else { return false }
        let alphanumeric = { (c: Unicode.Scalar) in
            ("a"..."z").contains(c) || ("0"..."9").contains(c)
        }
        return alphanumeric(first) && alphanumeric(last) && !name.contains("..") && scalars.allSatisfy { alphanumeric($0) || $0 == "-" || $0 == "." }
    }

    /// The name as it appears in queue names, which allow only letters, digits, `-` and `_` (SQS `CreateQueue`):
    /// each `.` becomes `_`. Server names hold no `_`, so the mapping is one-to-one (reversed by ``init(queueNameComponent:)``).
    public var queueNameComponent: String { rawValue.replacingOccurrences(of: ".", with: "_") }

    /// The server whose ``queueNameComponent`` is `component`; `nil` when that is no server's.
    public init?(queueNameComponent component: String) {
        self.init(rawValue: component.replacingOccurrences(of: "_", with: "."))
    }

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard Self.isValid(raw) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "bad server name \(raw)"))
        }
        self.rawValue = raw
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A training task's ID: `tsk-` and 12 lowercase hex digits (48 random bits), short enough to type.
public struct TaskID: RawRepresentable, Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Whether `name` can be a task ID: 1–64 characters of `a-z`, `0-9` and `-`, not starting with `-`, so that it
    /// is safe as a directory and cgroup name.
    public static func isValid(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= 64, first != "-" else { return false }
        return name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
    }

    /// A new random task ID.
    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> TaskID {
        let value = UInt64.random(in: 0..<(1 << 48), using: &generator)
        let hex = String(value, radix: 16)
        return TaskID(rawValue: "tsk-" + String(repeating: "0", count: 12 - hex.count) + hex)
    }

    /// A new random task ID from the system generator.
    public static func random() -> TaskID {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The unique ID of one request on a channel: a UUIDv7 (RFC 9562 §5.7), so IDs sort by creation time.
/// Its response carries the same ID.
public struct RequestID: RawRepresentable, Hashable, Codable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// A new UUIDv7: 48 bits of Unix milliseconds, version 7, 74 random bits (RFC 9562 §5.7).
    public static func make(now: Date = Date()) -> RequestID {
        var generator = SystemRandomNumberGenerator()
        return make(now: now, using: &generator)
    }

    /// A new UUIDv7 from the given clock reading and random source.
    public static func make<G: RandomNumberGenerator>(now: Date, using generator: inout G) -> RequestID {
        let millis = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: millis >> (8 * (5 - UInt64(i)))) }
        let randomA = generator.next()
        let randomB = generator.next()
        for i in 6..<16 {
            let source = i < 14 ? randomA >> (8 * UInt64(i - 6)) : randomB >> (8 * UInt64(i - 14))
            bytes[i] = UInt8(truncatingIfNeeded: source)
        }
        bytes[6] = (bytes[6] & 0x0F) | 0x70  // version 7
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // variant 10
        let uuid = UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9],
                bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
        return RequestID(rawValue: uuid.uuidString.lowercased())
    }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public var description: String { rawValue }
}

/// One channel of a server: its number, 0 for control, 1… for task work.
public struct ChannelID: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public var server: ServerID
    public var index: Int

    public init(server: ServerID, index: Int) {
        self.server = server
        self.index = index
    }

    /// `gpu-07/1`.
    public var description: String { "\(server)/\(index)" }
    public static func < (lhs: Self, rhs: Self) -> Bool { (lhs.server, lhs.index) < (rhs.server, rhs.index) }
}

/// Stream names of the event log, one place for their shapes.
public enum StreamName {
    /// `server/<name>`: attach, capacity and hello events of one server.
    public static func server(_ id: ServerID) -> String { "server/\(id)" }
    /// `task/<id>`: submission and every transition of one task.
    public static func task(_ id: TaskID) -> String { "task/\(id)" }
    /// `channel/<server>/<n>`: requests, responses and drains of one channel.
    public static func channel(_ id: ChannelID) -> String { "channel/\(id.server)/\(id.index)" }
    /// `backend`: the backend process's starts and clean stops.
    public static let backend = "backend"
}
