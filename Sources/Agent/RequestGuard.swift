@preconcurrency import Crypto
import Foundation
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// Where the agent's trusted backend keys come from (`--backend-key KEY|@FILE`, repeatable).
public struct BackendKeySource: Sendable {
    /// Keys given on the command line.
    public var keys: [Curve25519.Signing.PublicKey]
    /// Files of keys (`@FILE`), re-read when they change, so that a rotation's new key is trusted without a restart.
    public var files: [String]

    public init(keys: [Curve25519.Signing.PublicKey] = [], files: [String] = []) {
        self.keys = keys
        self.files = files
    }

    /// Reads every key.
    ///
    /// - Throws: ``KeyError`` naming the file that cannot be read or holds a bad key.
    public func load() throws(KeyError) -> [Curve25519.Signing.PublicKey] {
        var all = keys
        for file in files { all += try KeyFiles.publicKeys(from: "@" + file) }
        return all
    }

    /// A fingerprint of the files' state (size and modification time), to notice a change.
    func stamp() -> [String] {
        files.map { file in
            var info = stat()
            guard stat(file, &info) == 0 else { return "-" }
            return "\(info.st_size)/\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
        }
    }
}

/// Admits request messages before anything reads them: a valid signature by a trusted backend key, then no replay.
///
/// The replay window holds the SHA-256 of every admitted message's signed bytes for ``window`` (10 minutes, longer
/// than any delivery deadline) or until its `expiresAt` if that is later; a message seen again within it is refused.
/// The backend never sends the same bytes twice (a resend carries a new `sentAt`), so only a copy is refused. After a
/// restart the window is empty: a copy of a request journaled before it is answered from the journal, never executed
/// again (docs/security.md).
actor RequestGuard {
    /// How long an admitted message is remembered at least: 10 minutes (issue 12).
    static let window: TimeInterval = 600

    private let source: BackendKeySource
    private var trusted: [Curve25519.Signing.PublicKey]
    private var stamp: [String]
    private var seen: [SHA256.Digest: Date] = [:]
    private var nextPrune = Date.distantPast

    init(source: BackendKeySource) throws(KeyError) {
        self.source = source
        trusted = try source.load()
        stamp = source.stamp()
    }

    /// The outcome of ``check(_:)``.
    enum Check: Equatable {
        /// Signed by a trusted key: the message without its signature, and the digest to remember.
        case signed(unsigned: String, digest: SHA256.Digest)
        /// Refused before reading: the error to answer with (it names no content of the message but its hash).
        case refused(WireError)
    }

    /// Checks the signature, re-reading the key files first when they changed since the last read (a rotation adds
    /// a key, and its end removes the old one). A file that no longer reads keeps the keys read before.
    func check(_ text: String) -> Check {
        let now = source.stamp()
        if now != stamp, let reloaded = try? source.load() {
            trusted = reloaded
            stamp = now
        }
        switch MessageSigning.verify(text, context: .request, trusting: trusted) {
        case .valid(let unsigned):
            return .signed(unsigned: unsigned, digest: SHA256.hash(data: Data(unsigned.utf8)))
        case .unsigned:
            return .refused(Self.refusal(.unauthenticated, "the request is not signed", text))
        case .badSignature:
            return .refused(Self.refusal(.unauthenticated, "the request is not signed by a trusted backend key", text))
        }
    }

    /// Records an admitted message; `false` (and a refusal) when it was seen within the window.
    func admit(_ digest: SHA256.Digest, text: String, expiresAt: Date, now: Date = Date()) -> WireError? {
        prune(now: now)
        if let until = seen[digest], until > now {
            return Self.refusal(.replayed, "the request was received before; a copy is not executed", text)
        }
        seen[digest] = max(now.addingTimeInterval(Self.window), expiresAt)
        return nil
    }

    /// Forgets a message whose outcome could not be journaled, so that its redelivery is handled.
    func forget(_ digest: SHA256.Digest) { seen[digest] = nil }

    private func prune(now: Date) {
        guard now >= nextPrune else { return }
        seen = seen.filter { $0.value > now }
        nextPrune = now.addingTimeInterval(60)
    }

    /// An error naming only a fixed reason and the SHA-256 of the message, never its content. Pure.
    static func refusal(_ code: WireError.Code, _ reason: String, _ text: String) -> WireError {
        let hash = SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
        return WireError(code, "\(reason); message sha256 \(hash)")
    }
}
