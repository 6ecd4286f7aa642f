@preconcurrency import Crypto
import Agent
import Domain
import Foundation
import Wire

/// `touchstone-agent init --server NAME --workspace DIR`: creates the agent's key pair in its workspace and prints the
/// public key, for `touchstone server attach NAME --agent-key KEY` on the backend. An existing key is kept.
enum AgentInit {
    /// Creates the workspace (mode 0700) and the key pair when missing; prints the public key.
    ///
    /// - Throws: ``AgentStartError`` naming the workspace or the key file.
    static func run(server: ServerID, workspace: String) throws {
        do {
            try FileManager.default.createDirectory(
                atPath: workspace, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw AgentStartError(description: "cannot create the workspace \(workspace): \(error.localizedDescription)")
        }
        let configuration = AgentConfiguration(serverID: server, queuePath: "", workspace: workspace)
        do {
            let existed = FileManager.default.fileExists(atPath: configuration.keyPath)
            let key = try KeyFiles.loadOrCreate(configuration.keyPath)
            // The sealing key for secrets, next to it: <workspace>/agent.seal.key.pub is what
            // `server attach --agent-sealing-key @FILE` pins.
            _ = try SecretSealing.loadOrCreateKey(configuration.sealingKeyPath)
            print(KeyFiles.text(of: key.publicKey))
            if existed {
                FileHandle.standardError.write(Data("the key at \(configuration.keyPath) exists; kept\n".utf8))
            }
        } catch {
            throw AgentStartError(description: "\(error)")
        }
    }
}
