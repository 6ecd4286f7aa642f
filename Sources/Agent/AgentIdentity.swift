import Domain
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// This agent process's identity (issue 16: one agent per server).
///
/// Each start of `touchstone-agent` is a new instance, with a UUIDv7 ID (later starts sort later) recorded in its
/// journal. Every response carries it (``ResponseEnvelope/instance``), and the backend addresses requests to the
/// instance it knows (``RequestEnvelope/instance``). An instance answers requests addressed to itself, to any earlier
/// instance of its workspace (they are dead: the workspace lock admits one agent at a time), or to nobody. A request
/// addressed to anyone else means that another agent serves this server: this one is fenced.
struct AgentIdentity: Sendable, Equatable {
    /// This process's instance ID.
    let instance: String
    /// The instances recorded earlier in this workspace's journal.
    let earlier: Set<String>

    init(instance: String = RequestID.make().rawValue, earlier: some Sequence<String> = []) {
        self.instance = instance
        self.earlier = Set(earlier)
    }

    /// Whether this instance may answer a request addressed to `addressed`. Pure.
    func accepts(_ addressed: String?) -> Bool {
        guard let addressed else { return true }
        return addressed == instance || earlier.contains(addressed)
    }
}

/// The agent stops because another agent serves its server (``AgentIdentity``): it answered nothing and leaves its
/// queues to the other agent.
struct AgentFenced: Error, CustomStringConvertible {
    var description: String
}

/// Where a workspace is: its path and the directory's device and inode. A copy of a workspace (with its journal) has
/// another inode, so the copy's agent does not take the original agent's instances for earlier lives of its own.
public struct WorkspaceIdentity: Codable, Sendable, Equatable {
    public var path: String
    public var device: UInt64
    public var inode: UInt64

    /// Reads the identity of the workspace directory at `path`.
    ///
    /// - Throws: An error naming the path when it cannot be read.
    public static func current(_ path: String) throws -> WorkspaceIdentity {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw WorkspaceIdentityError(description: "cannot read the workspace \(path): \(String(cString: strerror(errno)))")
        }
        return WorkspaceIdentity(path: path, device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }
}

struct WorkspaceIdentityError: Error, CustomStringConvertible {
    var description: String
}
