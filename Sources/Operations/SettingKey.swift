/// One configuration key: its name in the YAML file, its command-line option and environment variable, its type,
/// unit, range and default, declared once and read by the resolver, the `--help` text, `config show` and the
/// generated table in docs/configuration.md.
///
/// Names are dotted camelCase paths (`statusInterval`, `sqs.region`): a YAML file nests them
/// (`sqs:` then `region:`), the environment spells them `TOUCHSTONE_` plus the path in upper snake case
/// (`TOUCHSTONE_SQS_REGION`, swift-configuration's `EnvironmentVariablesProvider` mapping), and the command line
/// uses ``option``.
public struct SettingKey: Sendable, Equatable {
    /// What values a key takes, and so how its text is parsed and checked.
    public enum Kind: Sendable, Equatable {
        /// Any non-empty text.
        case text
        /// One of a fixed set of words.
        case choice([String])
        /// A whole number within a closed range.
        case integer(ClosedRange<Int>)
        /// A number greater than `above` (exclusive) and at most `atMost`.
        case number(above: Double, atMost: Double)
        /// `true` or `false` (also `yes`/`no`, `1`/`0`).
        case flag
        /// A loopback `host:port` to listen on (`127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`).
        case loopbackAddress
    }

    /// The dotted key, e.g. `statusInterval`.
    public var name: String
    /// The command-line option without its dashes (`status-interval`), or `nil` when the key has none.
    public var option: String?
    public var kind: Kind
    /// The unit of a number (`seconds`, `bytes`, `MiB`), or `nil`.
    public var unit: String?
    /// The default, as its text; `nil` when the key has none (then it is optional, or ``required``).
    public var defaultValue: String?
    /// Whether the program cannot start without a value.
    public var required: Bool
    /// Whether the value is a secret: `config show` and errors print `<secret>` instead.
    public var secret: Bool
    /// One sentence for `--help` and the documentation.
    public var summary: String

    public init(
        _ name: String, option: String? = nil, kind: Kind = .text, unit: String? = nil, default defaultValue: String? = nil,
        required: Bool = false, secret: Bool = false, summary: String
    ) {
        self.name = name
        self.option = option
        self.kind = kind
        self.unit = unit
        self.defaultValue = defaultValue
        self.required = required
        self.secret = secret
        self.summary = summary
    }

    /// The environment variable that sets this key: `TOUCHSTONE_` plus the path in upper snake case.
    public var environmentVariable: String {
        var out = "TOUCHSTONE"
        for component in name.split(separator: ".") {
            out += "_"
            var previous: Character?
            for character in component {
                if let previous, previous.isLowercase, character.isUppercase { out += "_" }
                out += character.isLetter || character.isNumber ? character.uppercased() : "_"
                previous = character
            }
        }
        return out
    }

    /// What the key allows, in words: the last part of a bad value's one-line error and the docs' range column.
    public var allowed: String {
        switch kind {
        case .text: "any non-empty text"
        case .choice(let words): words.joined(separator: " or ")
        case .integer(let range):
            range.upperBound == .max
                ? "a whole number \(range.lowerBound) or more" : "a whole number \(range.lowerBound)–\(range.upperBound)"
        case .number(let above, let atMost): "a number above \(Self.format(above)) and at most \(Self.format(atMost))"
        case .flag: "true or false"
        case .loopbackAddress: "a loopback host:port, e.g. 127.0.0.1:9464"
        }
    }

    /// The text of `--help` for this key's option: the summary, then the default and the environment variable.
    public var help: String {
        var text = summary + (required ? " Required." : "")
        if let defaultValue { text += " Default: \(defaultValue)\(unit.map { " " + $0 } ?? "")." }
        text += " Also $\(environmentVariable), or `\(name)` in the configuration file."
        return text
    }

    static func format(_ number: Double) -> String {
        number == number.rounded() && abs(number) < 1e15 ? String(Int(number)) : String(number)
    }
}

extension Array where Element == SettingKey {
    /// The declared key of that name; a name not declared is a programming error.
    public func named(_ name: String) -> SettingKey {
        guard let key = first(where: { $0.name == name }) else { preconditionFailure("undeclared configuration key \(name)") }
        return key
    }
}
