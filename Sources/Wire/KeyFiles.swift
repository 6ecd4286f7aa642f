@preconcurrency import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An error reading or writing a key file, or reading a key argument: one line naming the file or argument.
public struct KeyError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Ed25519 key files (docs/security.md, "Keys").
///
/// A private key file holds the key's 32-byte seed (RFC 8032 §5.1.5) as standard base64 on one line and has mode
/// 0600; a public key file (the same name with `.pub`) holds the 32-byte public key the same way. A private key file
/// that its group or others may read (or write) is refused on every load.
public enum KeyFiles {
    /// The text of a public key: standard base64 of its 32 bytes, one line without a newline.
    public static func text(of key: Curve25519.Signing.PublicKey) -> String {
        key.rawRepresentation.base64EncodedString()
    }

    /// Creates a key pair at `privatePath` (mode 0600) and `privatePath + ".pub"` (mode 0644); the directory is
    /// created with mode 0700 when missing.
    ///
    /// - Returns: The new private key.
    /// - Throws: ``KeyError`` when the file exists (a key is never overwritten) or cannot be written.
    @discardableResult
    public static func create(at privatePath: String) throws(KeyError) -> Curve25519.Signing.PrivateKey {
        let key = Curve25519.Signing.PrivateKey()
        let directory = (privatePath as NSString).deletingLastPathComponent
        if !directory.isEmpty, !FileManager.default.fileExists(atPath: directory) {
            do {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw KeyError("cannot create the key directory \(directory): \(error.localizedDescription)")
            }
        }
        try write(key.rawRepresentation.base64EncodedString() + "\n", to: privatePath, mode: 0o600, exclusive: true)
        try write(text(of: key.publicKey) + "\n", to: privatePath + ".pub", mode: 0o644, exclusive: false)
        return key
    }

    /// Loads a private key, refusing a file its group or others may use.
    ///
    /// - Throws: ``KeyError``: the file is missing, has a mode other than owner-only (the message names the file and
    ///   its mode), or does not hold a base64 32-byte seed.
    public static func loadPrivate(_ path: String) throws(KeyError) -> Curve25519.Signing.PrivateKey {
        let seed = try loadSecretBytes(path)
        guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else {
            throw KeyError("key file \(path) does not hold a base64 Ed25519 seed of 32 bytes")
        }
        return key
    }

    /// The 32 bytes of a private key file, refusing a file its group or others may use.
    ///
    /// - Throws: ``KeyError`` as ``loadPrivate(_:)``.
    public static func loadSecretBytes(_ path: String) throws(KeyError) -> Data {
        var info = stat()
        guard stat(path, &info) == 0 else { throw KeyError("no key file at \(path)") }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw KeyError(
                "key file \(path) has mode \(String(mode, radix: 8, uppercase: false).leftPadded(to: 4)): others can "
                    + "read it; run chmod 600 \(path) (or make a new key)")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
            let seed = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), seed.count == 32
        else { throw KeyError("key file \(path) does not hold a base64 key of 32 bytes") }
        return seed
    }

    /// Loads a private key, creating the pair first when the file does not exist.
    ///
    /// - Throws: As ``loadPrivate(_:)`` and ``create(at:)``.
    public static func loadOrCreate(_ path: String) throws(KeyError) -> Curve25519.Signing.PrivateKey {
        if FileManager.default.fileExists(atPath: path) { return try loadPrivate(path) }
        return try create(at: path)
    }

    /// Reads public keys from a command-line value: a base64 key, or `@FILE` naming a file of them, one a line
    /// (blank lines and lines starting with `#` are skipped).
    ///
    /// - Throws: ``KeyError`` naming the value or the file and line when a key is not base64 of 32 bytes, or the file
    ///   cannot be read or holds none.
    public static func publicKeys(from value: String) throws(KeyError) -> [Curve25519.Signing.PublicKey] {
        guard value.hasPrefix("@") else { return [try publicKey(value, source: "the key")] }
        let path = String(value.dropFirst())
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw KeyError("cannot read the key file \(path)")
        }
        var keys: [Curve25519.Signing.PublicKey] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            keys.append(try publicKey(trimmed, source: "\(path) line \(number + 1)"))
        }
        guard !keys.isEmpty else { throw KeyError("the key file \(path) holds no key") }
        return keys
    }

    /// Parses one base64 public key.
    ///
    /// - Throws: ``KeyError`` naming `source` when it is not base64 of 32 bytes.
    public static func publicKey(_ text: String, source: String = "the key") throws(KeyError)
        -> Curve25519.Signing.PublicKey
    {
        guard let bytes = Data(base64Encoded: text), bytes.count == 32,
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: bytes)
        else {
            throw KeyError("\(source) is not an Ed25519 public key (base64 of 32 bytes): \(text.prefix(60).debugDescription)")
        }
        return key
    }

    /// Writes a file with a mode set at creation (never a window in which others may read it); `exclusive` refuses
    /// an existing file.
    ///
    /// - Throws: ``KeyError`` naming the file.
    public static func write(_ text: String, to path: String, mode: mode_t, exclusive: Bool) throws(KeyError) {
        let flags = O_WRONLY | O_CREAT | (exclusive ? O_EXCL : O_TRUNC)
        let fd = open(path, flags, mode)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw KeyError(errno == EEXIST ? "a key already exists at \(path)" : "cannot write \(path): \(reason)")
        }
        defer { close(fd) }
        // The umask may have narrowed the mode at creation, never widened it; state it exactly.
        fchmod(fd, mode)
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw KeyError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
