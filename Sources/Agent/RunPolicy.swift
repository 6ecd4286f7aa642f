import Domain
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What this agent agrees to run, set by its own flags (`--allow-image`, `--allow-process-runtime`, `--run-as`,
/// `--allow-root`); nothing in a request can widen it (docs/security.md, "What an agent will run").
///
/// A task outside the policy fails to start with a reason starting with ``refusalPrefix``; the backend records it with
/// the failure class `policy` and does not retry it.
public struct RunPolicy: Sendable, Equatable {
    /// Images tasks may run in on the docker runtime: an entry is an exact image name, or a prefix when it ends in
    /// `*` (`registry.example.com/ml/*`). Empty: only the agent's `--default-image`.
    public var allowedImages: [String] = []
    /// Whether the process runtime may run tasks at all (a process runs with the agent's own access to the host).
    public var allowProcessRuntime = false
    /// The user tasks run as (a name or a numeric uid; process runtime only, ``RunAsUser``); `nil`: the agent's own
    /// user (process runtime) or the image's (docker runtime, which Touchstone cannot know and counts as root).
    public var runAs: String?
    /// Whether tasks may run as root (uid 0).
    public var allowRoot = false

    /// The start of every refusal's reason, which the backend reads as the failure class `policy`.
    public static let refusalPrefix = "policy: "

    public init(allowedImages: [String] = [], allowProcessRuntime: Bool = false, runAs: String? = nil, allowRoot: Bool = false) {
        self.allowedImages = allowedImages
        self.allowProcessRuntime = allowProcessRuntime
        self.runAs = runAs
        self.allowRoot = allowRoot
    }

    /// Why a task may not run here, or `nil` when it may. Pure.
    ///
    /// - Parameters:
    ///   - spec: The task.
    ///   - runtime: This agent's runtime.
    ///   - defaultImage: The agent's `--default-image` (docker runtime).
    ///   - runAsUID: The uid ``runAs`` names (resolved by the caller), or `nil` when ``runAs`` is `nil`.
    ///   - agentUID: The agent's effective uid.
    public func refusal(
        for spec: TaskSpec, runtime: RuntimeKind, defaultImage: String?, runAsUID: UInt32?, agentUID: UInt32
    ) -> String? {
        switch runtime {
        case .process:
            guard allowProcessRuntime else {
                return Self.refusalPrefix
                    + "this agent does not run tasks as processes (start it with --allow-process-runtime, or use "
                    + "--runtime docker)"
            }
            let uid = runAsUID ?? agentUID
            if uid == 0, !allowRoot {
                return Self.refusalPrefix
                    + "the task would run as root (uid 0); start the agent with --run-as USER, or --allow-root"
            }
        case .docker:
            if let image = spec.image ?? defaultImage, !imageAllowed(image, defaultImage: defaultImage) {
                return Self.refusalPrefix + "image \(image) is not allowed on this agent (--allow-image: "
                    + (allowedImages.isEmpty ? "none; only --default-image" : allowedImages.joined(separator: ", "))
                    + ")"
            }
            if runAsUID ?? 0 == 0, !allowRoot {
                return Self.refusalPrefix
                    + "the container would run as its image's user, which may be root; start the agent with "
                    + "--run-as USER, or --allow-root"
            }
        }
        return nil
    }

    /// Whether an image is allowed: listed exactly, under a listed prefix, or the agent's default image. Pure.
    public func imageAllowed(_ image: String, defaultImage: String?) -> Bool {
        if image == defaultImage { return true }
        return allowedImages.contains { entry in
            entry.hasSuffix("*") ? image.hasPrefix(entry.dropLast()) : image == entry
        }
    }
}

/// The user tasks run as on the process runtime (`touchstone-agent --run-as USER`).
public struct RunAsUser: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32

    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }

    /// A user name or a numeric uid, from the password database.
    ///
    /// - Returns: `nil` when no such user exists.
    public static func resolve(_ user: String) -> RunAsUser? {
        let entry = UInt32(user).map { getpwuid($0) } ?? getpwnam(user)
        guard let entry else { return nil }
        return RunAsUser(uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
    }

    /// What the wrapper runs the command through: `setpriv` (util-linux) drops to the user and group, clears the
    /// supplementary groups, and forbids regaining privileges.
    var commandPrefix: [String] {
        ["setpriv", "--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--no-new-privs", "--"]
    }

    /// Gives the working directory and everything in it to the user.
    ///
    /// - Returns: Why it could not, or `nil`.
    func own(_ directory: String) -> String? {
        var paths = [directory]
        if let enumerator = FileManager.default.enumerator(atPath: directory) {
            while let relative = enumerator.nextObject() as? String { paths.append(directory + "/" + relative) }
        }
        for path in paths where lchown(path, uid, gid) != 0 {
            return "cannot give \(path) to uid \(uid): \(String(cString: strerror(errno)))"
        }
        return nil
    }
}
