/// Environment variable names a task may set (`task submit --env NAME=VALUE`).
///
/// The rule is POSIX's portable name (IEEE Std 1003.1-2017, Base Definitions §8.1 "Environment Variable Definition":
/// "uppercase letters, digits, and the <underscore> … and do not begin with a digit"; lowercase letters are allowed
/// as well, since §8.1 says applications shall tolerate them): `[A-Za-z_][A-Za-z0-9_]*`, here at most 255 bytes.
/// Checked by ``TaskSpec/validate()``, so both at `task submit` and when the agent receives a start request.
public enum EnvironmentName {
    /// The rule, for messages.
    public static let shape = "names are [A-Za-z_][A-Za-z0-9_]*, at most 255 characters (POSIX)"

    /// What is wrong with a name, `nil` when it fits ``shape``.
    public static func problem(_ name: String) -> String? {
        func letter(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || byte == UInt8(ascii: "_")
        }
        let bytes = Array(name.utf8)
        guard let first = bytes.first, bytes.count <= 255, letter(first),
            bytes.allSatisfy({ letter($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
        else { return "environment variable name \(name.debugDescription) is not valid: \(shape)" }
        return nil
    }
}

extension RelativePath {
    /// Linux's `NAME_MAX`: the most bytes of one path component.
    public static let maxComponentBytes = 255
    /// Linux's `PATH_MAX`: the most bytes of a path.
    public static let maxBytes = 4096

    /// What is wrong with a path that must stay inside a directory, `nil` when ``isConfined(_:)`` holds.
    ///
    /// - Parameter path: A path relative to the directory, e.g. `data/train.csv`.
    /// - Returns: A one-line reason: empty, absolute, a NUL byte, a `..` component, a component over
    ///   ``maxComponentBytes`` or the whole over ``maxBytes``.
    public static func problem(_ path: String) -> String? {
        let shown = String(path.prefix(80)).debugDescription + (path.count > 80 ? "…" : "")
        if path.isEmpty { return "the path is empty" }
        if path.hasPrefix("/") { return "path \(shown) is absolute: it must be relative to the task's directory" }
        if path.contains("\0") { return "path \(shown) holds a NUL byte" }
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        if components.contains("..") { return "path \(shown) has a '..' component: it must stay inside the task's directory" }
        if path.utf8.count > maxBytes { return "path \(shown) is \(path.utf8.count) bytes, over \(maxBytes)" }
        if let long = components.first(where: { $0.utf8.count > maxComponentBytes }) {
            return "path \(shown) has a component of \(long.utf8.count) bytes, over \(maxComponentBytes)"
        }
        return nil
    }
}
