@preconcurrency import Crypto
import Domain
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The backend's key directory (`<state dir>/keys`, mode 0700; docs/security.md, "Keys"):
///
/// - `backend.key` (0600) and `backend.key.pub`: the key requests are signed with;
/// - `backend.next.key` and its `.pub` while a rotation's overlap lasts (`keys rotate`): it becomes `backend.key` at
///   the rotation's `activeFrom`;
/// - `backend-trusted.pub`: the public keys an agent must trust now (the current one, and the next one during an
///   overlap), one a line: what `touchstone-agent --backend-key @FILE` reads, re-read when it changes;
/// - `agents/<server>.pub` (and `.seal.pub`, its X25519 sealing key): the public key an agent on the same host published (the co-located default, pinned by the
///   backend on first use with the source `co-located`).
public struct KeyDirectory: Sendable {
    public var path: String

    public init(stateDirectory: String) { path = stateDirectory + "/keys" }

    public var current: String { path + "/backend.key" }
    public var next: String { path + "/backend.next.key" }
    public var trusted: String { path + "/backend-trusted.pub" }
    public func agent(_ server: ServerID) -> String { path + "/agents/\(server).pub" }
    /// The sealing (X25519) public key a co-located agent published.
    public func agentSealing(_ server: ServerID) -> String { path + "/agents/\(server).seal.pub" }

    /// Creates the backend's first key pair when there is none.
    ///
    /// - Returns: The public key, and whether it was made now.
    /// - Throws: ``KeyError`` when the key cannot be written or the one there is refused (its mode, its contents).
    @discardableResult
    public func initialize() throws(KeyError) -> (publicKey: String, created: Bool) {
        if FileManager.default.fileExists(atPath: current) {
            let key = try KeyFiles.loadPrivate(current)
            return (KeyFiles.text(of: key.publicKey), false)
        }
        let key = try KeyFiles.create(at: current)
        try writeTrusted()
        return (KeyFiles.text(of: key.publicKey), true)
    }

    /// Creates the next key of a rotation (``BackendKeyRotated``).
    ///
    /// - Returns: The previous and the new public key.
    /// - Throws: ``KeyError`` when no key exists yet, or a rotation is already under way.
    public func rotate() throws(KeyError) -> (previous: String, next: String) {
        let old = try KeyFiles.loadPrivate(current)
        guard !FileManager.default.fileExists(atPath: next) else {
            throw KeyError("a rotation is under way (\(next) exists): wait until its overlap ends")
        }
        let new = try KeyFiles.create(at: next)
        try writeTrusted()
        return (KeyFiles.text(of: old.publicKey), KeyFiles.text(of: new.publicKey))
    }

    /// Ends a rotation: the next key becomes the current one, and the old one is no longer trusted.
    ///
    /// - Throws: ``KeyError`` when the files cannot be renamed.
    public func promote() throws(KeyError) {
        guard rename(next, current) == 0, rename(next + ".pub", current + ".pub") == 0 else {
            throw KeyError("cannot make \(next) the current key: \(String(cString: strerror(errno)))")
        }
        try writeTrusted()
    }

    /// Rewrites `backend-trusted.pub` from the key files (atomically: written aside, then renamed).
    public func writeTrusted() throws(KeyError) {
        var lines = ["# Backend keys a touchstone-agent trusts now (--backend-key @FILE); written by touchstone keys."]
        for file in [current, next] where FileManager.default.fileExists(atPath: file) {
            lines.append(KeyFiles.text(of: try KeyFiles.loadPrivate(file).publicKey))
        }
        let aside = trusted + ".tmp"
        unlink(aside)
        try KeyFiles.write(lines.joined(separator: "\n") + "\n", to: aside, mode: 0o644, exclusive: true)
        guard rename(aside, trusted) == 0 else {
            throw KeyError("cannot write \(trusted): \(String(cString: strerror(errno)))")
        }
    }
}
