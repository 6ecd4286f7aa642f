@preconcurrency import Crypto
import Foundation
import Wire

/// Keys for tests that drive an agent with raw protocol messages: the backend key a state directory holds (made as
/// `touchstone keys init` makes it, so that an agent started with `--queue-path <dir>/queues.db` trusts it), and
/// signing with it.
public enum TestKeys {
    /// Creates (or reads) the backend key of a state directory.
    ///
    /// - Throws: ``KeyError`` when the key cannot be written or read.
    public static func backend(stateDirectory: String) throws -> Curve25519.Signing.PrivateKey {
        let keys = KeyDirectory(stateDirectory: stateDirectory)
        try keys.initialize()
        return try KeyFiles.loadPrivate(keys.current)
    }

    /// Signs a request message's text as the backend does (docs/protocol.md).
    public static func sign(_ text: String, with key: Curve25519.Signing.PrivateKey) -> String {
        MessageSigning.sign(text, context: .request, with: key)
    }
}
