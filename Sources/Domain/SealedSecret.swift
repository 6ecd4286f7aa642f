import Foundation

/// An environment variable's value sealed to one server's agent (`task submit --secret-env NAME`): HPKE base mode,
/// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305 (RFC 9180), to the X25519 key pinned for that server.
/// Only the agent holding the private key can open it; the log, `events` and `task show` hold only these bytes.
/// The code is `SecretSealing` in `Sources/Wire/SecretSealing.swift` (docs/security.md, "Secrets").
public struct SealedSecret: Codable, Sendable, Equatable {
    /// The environment variable's name.
    public var name: String
    /// The server whose agent can open it.
    public var server: ServerID
    /// HPKE's encapsulated key (32 bytes).
    public var encapsulatedKey: Data
    /// The sealed value with its 16-byte tag.
    public var ciphertext: Data

    public init(name: String, server: ServerID, encapsulatedKey: Data, ciphertext: Data) {
        self.name = name
        self.server = server
        self.encapsulatedKey = encapsulatedKey
        self.ciphertext = ciphertext
    }
}
