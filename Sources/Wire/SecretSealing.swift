@preconcurrency import Crypto
import Domain
import Foundation

/// Sealing `task submit --secret-env` values to an agent's X25519 key (``SealedSecret``): RFC 9180 HPKE, base mode,
/// ciphersuite DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305, with the info string ``info`` and the
/// associated data `<server>\n<name>`, so that a sealed value opens only as that variable on that server.
public enum SecretSealing {
    /// HPKE's `info`: what the key schedule is for.
    public static let info = Data("touchstone/secret-env/v1".utf8)
    static let suite = HPKE.Ciphersuite.Curve25519_SHA256_ChachaPoly

    static func associatedData(name: String, server: ServerID) -> Data { Data("\(server)\n\(name)".utf8) }

    /// Seals a value to a server's agent.
    ///
    /// - Throws: A CryptoKit error when the key is unusable.
    public static func seal(
        _ value: String, name: String, server: ServerID, to key: Curve25519.KeyAgreement.PublicKey
    ) throws -> SealedSecret {
        var sender = try HPKE.Sender(recipientKey: key, ciphersuite: suite, info: info)
        let ciphertext = try sender.seal(Data(value.utf8), authenticating: associatedData(name: name, server: server))
        return SealedSecret(name: name, server: server, encapsulatedKey: sender.encapsulatedKey, ciphertext: ciphertext)
    }

    /// Opens a value sealed to this agent.
    ///
    /// - Throws: A CryptoKit error when it was sealed to another key, for another server or name, or altered.
    public static func open(_ sealed: SealedSecret, with key: Curve25519.KeyAgreement.PrivateKey) throws -> String {
        var recipient = try HPKE.Recipient(
            privateKey: key, ciphersuite: suite, info: info, encapsulatedKey: sealed.encapsulatedKey)
        let plain = try recipient.open(
            sealed.ciphertext, authenticating: associatedData(name: sealed.name, server: sealed.server))
        return String(decoding: plain, as: UTF8.self)
    }

    /// Loads an agent's X25519 sealing key (`<workspace>/agent.seal.key`, base64 of 32 bytes, mode 0600), creating
    /// it and its `.pub` when missing.
    ///
    /// - Throws: ``KeyError`` as ``KeyFiles/loadPrivate(_:)``.
    public static func loadOrCreateKey(_ path: String) throws(KeyError) -> Curve25519.KeyAgreement.PrivateKey {
        if !FileManager.default.fileExists(atPath: path) {
            let key = Curve25519.KeyAgreement.PrivateKey()
            try KeyFiles.write(key.rawRepresentation.base64EncodedString() + "\n", to: path, mode: 0o600, exclusive: true)
            try KeyFiles.write(text(of: key.publicKey) + "\n", to: path + ".pub", mode: 0o644, exclusive: false)
            return key
        }
        let seed = try KeyFiles.loadSecretBytes(path)
        guard let key = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: seed) else {
            throw KeyError("key file \(path) does not hold a base64 X25519 key of 32 bytes")
        }
        return key
    }

    /// The text of a sealing public key: standard base64 of its 32 bytes.
    public static func text(of key: Curve25519.KeyAgreement.PublicKey) -> String {
        key.rawRepresentation.base64EncodedString()
    }

    /// Parses a sealing public key (`KEY`, or `@FILE` holding one).
    ///
    /// - Throws: ``KeyError`` naming the value when it is not base64 of 32 bytes.
    public static func publicKey(_ value: String) throws(KeyError) -> Curve25519.KeyAgreement.PublicKey {
        var text = value
        if value.hasPrefix("@") {
            guard let contents = try? String(contentsOfFile: String(value.dropFirst()), encoding: .utf8) else {
                throw KeyError("cannot read the key file \(value.dropFirst())")
            }
            text = contents
        }
        text = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let bytes = Data(base64Encoded: text), bytes.count == 32,
            let key = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: bytes)
        else { throw KeyError("\(value.prefix(60).debugDescription) is not an X25519 public key (base64 of 32 bytes)") }
        return key
    }
}
