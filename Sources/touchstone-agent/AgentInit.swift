import Agent
import ArgumentParser
@preconcurrency import Crypto
import Domain
import Foundation
import Wire

/// `touchstone-agent init`: creates the agent's key pair in its workspace and prints the public key, for
/// `touchstone server attach NAME --agent-key KEY` on the backend.
struct AgentInit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create this agent's key pair in its workspace and print its public key (base64, one line).")

    @Option(help: "This server's name, as attached in the backend.")
    var server: String

    @Option(help: "The workspace (created with mode 0700); the private key is <workspace>/agent.key (mode 0600).")
    var workspace: String

    func validate() throws {
        guard ServerID.isValid(server) else { throw ValidationError("--server must be \(ServerID.shape)") }
    }

    func run() throws {
        let path = AgentCommand.absolute(workspace)
        do {
            try FileManager.default.createDirectory(
                atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw AgentStartError(description: "cannot create the workspace \(path): \(error.localizedDescription)")
        }
        let configuration = AgentConfiguration(
            serverID: ServerID(rawValue: server)!, queuePath: "", workspace: path)
        do {
            let existed = FileManager.default.fileExists(atPath: configuration.keyPath)
            let key = try KeyFiles.loadOrCreate(configuration.keyPath)
            print(KeyFiles.text(of: key.publicKey))
            if existed {
                FileHandle.standardError.write(Data("the key at \(configuration.keyPath) exists; kept\n".utf8))
            }
        } catch {
            throw AgentStartError(description: "\(error)")
        }
    }
}
