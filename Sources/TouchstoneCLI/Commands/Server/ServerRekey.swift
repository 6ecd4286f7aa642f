import ArgumentParser
@preconcurrency import Crypto
import Domain
import EventStore
import Foundation
import Projections
import Wire

/// `touchstone server rekey NAME --agent-key KEY [--overlap 10m]`: pins an agent's new key.
struct ServerRekey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rekey",
        abstract: "Pin a server's new agent key; the old one stays trusted for the overlap.",
        discussion: """
            Make the new key on the server first (a new workspace's `touchstone-agent init`, or move the old \
            agent.key aside and run init again), pin it here, then restart the agent with it: responses signed \
            with either key are accepted until the overlap ends. Recorded as a server.agent-key-pinned event.
            """)

    @Argument(help: "The server's name.")
    var name: String

    @Option(help: "The agent's new public key (base64) or @FILE holding it.")
    var agentKey: String

    @Option(help: "The agent's new X25519 sealing key for --secret-env values (base64 or @FILE).")
    var agentSealingKey: String?

    @Option(help: "How long the previous key stays trusted: 90s, 10m, 2h.")
    var overlap: String = "10m"

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard ServerID.isValid(name) else { throw ValidationError("server name \(name.debugDescription) must be \(ServerID.shape)") }
        guard ServerLifecycleSupport.seconds(overlap) != nil else {
            throw ValidationError("--overlap must be a duration such as 90s, 10m or 2h")
        }
    }

    /// Reads one agent key from `KEY` or `@FILE`.
    ///
    /// - Throws: ``CLIError`` naming the value when it is not one Ed25519 public key.
    static func parse(_ value: String) throws -> String {
        do {
            let keys = try KeyFiles.publicKeys(from: value)
            guard keys.count == 1 else { throw KeyError("\(value) holds \(keys.count) keys; give one") }
            return KeyFiles.text(of: keys[0])
        } catch let error as KeyError {
            throw CLIError("--agent-key: \(error.message)")
        }
    }

    /// Reads one sealing key from `KEY` or `@FILE`.
    ///
    /// - Throws: ``CLIError`` naming the value.
    static func parseSealing(_ value: String) throws -> String {
        do {
            return SecretSealing.text(of: try SecretSealing.publicKey(value))
        } catch {
            throw CLIError("--agent-sealing-key: \(error)")
        }
    }

    func run() async throws {
        let server = ServerID(rawValue: name)!
        let key = try Self.parse(agentKey)
        let sealing = try agentSealingKey.map { try Self.parseSealing($0) }
        let log = try global.openLog()
        guard try await log.readModel(ServerCapacity.self)[server] != nil else {
            throw CLIError("unknown server \(server): attach it first")
        }
        let until = Date().addingTimeInterval(Double(ServerLifecycleSupport.seconds(overlap) ?? 600))
        try await log.append(
            .keys(.agentKeyPinned(AgentKeyPinned(
                        serverID: server, publicKey: key, sealingKey: sealing, source: "operator",
                        previousValidUntil: until))),
            metadata: .init(actor: global.operatorActor))
        print("pinned a new agent key for \(server); the previous one is trusted until \(Render.time(until))")
    }
}
