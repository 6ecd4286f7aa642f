@preconcurrency import Crypto
import Domain
import Foundation
import Wire

/// The environment a task's sealed secrets open to on this agent (`task submit --secret-env`).
enum SecretEnvironment {
    /// Opens the secrets sealed for `server`.
    ///
    /// - Returns: name → value, or why the task cannot start: a secret sealed for other servers only, no sealing key,
    ///   or one that does not open (sealed to another key, or altered).
    static func open(_ secrets: [SealedSecret], server: ServerID, key: Curve25519.KeyAgreement.PrivateKey?)
        -> Result<[String: String], SecretError>
    {
        var environment: [String: String] = [:]
        for name in Set(secrets.map(\.name)).sorted() {
            guard let sealed = secrets.first(where: { $0.name == name && $0.server == server }) else {
                return .failure(SecretError(message: "secret \(name) is not sealed for \(server)"))
            }
            guard let key else { return .failure(SecretError(message: "this agent has no sealing key to open \(name)")) }
            do {
                environment[name] = try SecretSealing.open(sealed, with: key)
            } catch {
                return .failure(SecretError(message: "secret \(name) does not open with this agent's sealing key"))
            }
        }
        return .success(environment)
    }

    struct SecretError: Error {
        var message: String
    }
}
