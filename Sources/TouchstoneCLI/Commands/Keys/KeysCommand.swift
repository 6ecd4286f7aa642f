import ArgumentParser
@preconcurrency import Crypto
import Domain
import EventStore
import Foundation
import Projections
import Wire

/// `touchstone keys …`: the backend's signing key (docs/security.md, "Keys").
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Create, show and rotate the backend's signing key.",
        subcommands: [KeysInit.self, KeysShow.self, KeysRotate.self])
}

/// `touchstone keys init`: creates `<state dir>/keys/backend.key` (mode 0600) and records it.
struct KeysInit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create the backend's Ed25519 key pair in the state directory (keys/backend.key, mode 0600).",
        discussion: """
            Prints the public key agents trust (touchstone-agent --backend-key KEY, or @FILE with \
            <state dir>/keys/backend-trusted.pub). An existing key is kept. `serve` and `server attach` create \
            the key as well when there is none.
            """)

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let log = try global.openLog(create: true)
        let (key, created) = try await KeysSupport.initialize(global: global, log: log, record: true)
        print(key)
        if !created { FileHandle.standardError.write(Data("the backend key exists; kept\n".utf8)) }
    }
}

/// `touchstone keys show`: prints the public keys agents must trust now.
struct KeysShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Print the backend public keys agents must trust now, one a line.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let keys = KeyDirectory(stateDirectory: global.resolvedStateDir)
        guard let text = try? String(contentsOfFile: keys.trusted, encoding: .utf8) else {
            throw CLIError("no backend key in \(keys.path): run `touchstone keys init`")
        }
        for line in text.split(separator: "\n") where !line.hasPrefix("#") { print(line) }
    }
}

/// `touchstone keys rotate [--overlap 10m]`: a new key, trusted by agents at once, signing from the overlap's end.
struct KeysRotate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate",
        abstract: "Make a new backend key; requests are signed with it once the overlap ends.",
        discussion: """
            The new public key is added to <state dir>/keys/backend-trusted.pub at once; agents that read that file \
            (--backend-key @FILE) trust it within one request, without a restart. Give it to other agents within \
            the overlap. When the overlap ends, the running backend signs with the new key and the old one leaves \
            the file. The rotation is recorded as a keys.backend-rotated event.
            """)

    @Option(help: "How long the old and the new key are both trusted before the new one signs: 90s, 10m, 2h.")
    var overlap: String = "10m"

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard ServerLifecycleSupport.seconds(overlap) != nil else {
            throw ValidationError("--overlap must be a duration such as 90s, 10m or 2h")
        }
    }

    func run() async throws {
        let log = try global.openLog(create: true)
        let keys = KeyDirectory(stateDirectory: global.resolvedStateDir)
        let activeFrom = Date().addingTimeInterval(Double(ServerLifecycleSupport.seconds(overlap) ?? 600))
        do {
            let (previous, next) = try keys.rotate()
            try await log.append(
                .keys(.backendKeyRotated(BackendKeyRotated(publicKey: next, previousKey: previous, activeFrom: activeFrom))),
                metadata: .init(actor: global.operatorActor))
            print(next)
            FileHandle.standardError.write(
                Data("signing with it from \(Render.time(activeFrom)); until then both keys are trusted\n".utf8))
        } catch let error as KeyError {
            throw CLIError("\(error)")
        }
    }
}

/// Shared by `keys init`, `serve` and `server attach`.
enum KeysSupport {
    /// Creates the backend key when missing; `record` (`keys init`) records its creation as a ``BackendKeyRotated``
    /// with no previous key (a key made implicitly by `server attach` or `serve` is not an event: rotations are).
    ///
    /// - Returns: The public key and whether it was created now.
    /// - Throws: ``CLIError`` naming the key file when it is refused (mode, contents) or cannot be written.
    @discardableResult
    static func initialize(global: GlobalOptions, log: TouchstoneLog, record: Bool = false) async throws -> (String, Bool) {
        let keys = KeyDirectory(stateDirectory: global.resolvedStateDir)
        let result: (publicKey: String, created: Bool)
        do {
            result = try keys.initialize()
        } catch {
            throw CLIError("\(error)")
        }
        if result.created && record {
            try await log.append(
                .keys(.backendKeyRotated(BackendKeyRotated(publicKey: result.publicKey, previousKey: nil, activeFrom: Date()))),
                metadata: .init(actor: global.operatorActor))
        }
        return (result.publicKey, result.created)
    }
}
