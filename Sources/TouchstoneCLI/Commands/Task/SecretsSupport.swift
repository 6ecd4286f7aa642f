@preconcurrency import Crypto
import Domain
import EventStore
import Foundation
import Projections
import Wire

/// `task submit --secret-env NAME`: each value, read from the submitter's environment, sealed to the sealing key
/// pinned for every server the task may run on (docs/security.md, "Secrets").
enum SecretsSupport {
    /// Seals the named variables.
    ///
    /// - Returns: One ``SealedSecret`` per variable and server with a pinned sealing key.
    /// - Throws: ``CLIError`` for a name that is not a variable name or not set, or when no server the task may run
    ///   on has a sealing key pinned.
    static func seal(_ names: [String], for spec: TaskSpec, log: TouchstoneLog) async throws -> [SealedSecret] {
        guard !names.isEmpty else { return [] }
        let environment = ProcessInfo.processInfo.environment
        var values: [(String, String)] = []
        for name in names {
            guard EnvironmentName.isValid(name) else {
                throw CLIError("--secret-env \(name.debugDescription) is not a variable name ([A-Za-z_][A-Za-z0-9_]*)")
            }
            guard let value = environment[name] else {
                throw CLIError("--secret-env \(name): the variable is not set in this environment")
            }
            values.append((name, value))
        }
        let servers: [ServerID]
        if let pinnedServer = spec.server {
            servers = [pinnedServer]
        } else {
            servers = try await log.readModel(ServerCapacity.self).rows.values.map(\.serverID).sorted()
        }
        var sealed: [SealedSecret] = []
        for server in servers {
            guard let key = try await sealingKey(of: server, log: log) else { continue }
            for (name, value) in values {
                sealed.append(try SecretSealing.seal(value, name: name, server: server, to: key))
            }
        }
        guard !sealed.isEmpty else {
            throw CLIError(
                "--secret-env needs an agent sealing key: none is pinned for "
                    + (spec.server.map { "\($0)" } ?? "any attached server")
                    + " (server attach --agent-sealing-key KEY, or start an agent on this host first)")
        }
        return sealed
    }

    /// The sealing key of the newest pin of a server's agent, if it has one.
    static func sealingKey(of server: ServerID, log: TouchstoneLog) async throws -> Curve25519.KeyAgreement.PublicKey? {
        var latest: AgentKeyPinned?
        for event in try await log.store.read(stream: KeyEvent.agentStream(server)) {
            if case .keys(.agentKeyPinned(let pin)) = try ReadModels.decode(event).event { latest = pin }
        }
        return try latest?.sealingKey.map { text throws in try SecretSealing.publicKey(text) }
    }
}

/// Environment variable names: a letter or `_`, then letters, digits and `_`.
enum EnvironmentName {
    static func isValid(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || (first.isASCII && CharacterSet.letters.contains(first))
        else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && CharacterSet.alphanumerics.contains($0)) }
    }
}
