@preconcurrency import Crypto
import Domain
import EventStore
import Foundation
import Projections
import Synchronization
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// The keys of a running backend: the one it signs requests with (moving to the next at a rotation's `activeFrom`),
/// and the agent keys it pinned in the log, per server.
public final class BackendKeys: Sendable {
    let directory: KeyDirectory
    let log: TouchstoneLog
    private struct State {
        var signing: Curve25519.Signing.PrivateKey
        var next: (key: Curve25519.Signing.PrivateKey, activeFrom: Date)?
        var agents: [ServerID: [Curve25519.Signing.PublicKey]] = [:]
    }
    private let state: Mutex<State>

    /// Loads the backend's key from the state directory, creating the first one when there is none.
    ///
    /// - Throws: ``KeyError`` when a key file is refused (mode, contents).
    public init(stateDirectory: String, log: TouchstoneLog) throws(KeyError) {
        directory = KeyDirectory(stateDirectory: stateDirectory)
        self.log = log
        try directory.initialize()
        state = Mutex(State(signing: try KeyFiles.loadPrivate(directory.current)))
    }

    /// The key to sign a request with now: the current key, or the next one once its rotation's overlap ended (the
    /// files are then promoted).
    ///
    /// - Throws: ``KeyError`` or a log error while reading a rotation.
    func signingKey(now: Date = Date()) async throws -> Curve25519.Signing.PrivateKey {
        if FileManager.default.fileExists(atPath: directory.next), state.withLock({ $0.next == nil }) {
            let key = try KeyFiles.loadPrivate(directory.next)
            let text = KeyFiles.text(of: key.publicKey)
            var activeFrom = Date.distantFuture
            for event in try await log.store.read(stream: "keys/backend") {
                if case .keys(.backendKeyRotated(let rotated)) = try ReadModels.decode(event).event,
                    rotated.publicKey == text
                {
                    activeFrom = rotated.activeFrom
                }
            }
            state.withLock { $0.next = (key, activeFrom) }
        }
        return try state.withLock { state throws(KeyError) in
            if let next = state.next, next.activeFrom <= now {
                try directory.promote()
                state.signing = next.key
                state.next = nil
            }
            return state.signing
        }
    }

    /// The agent keys trusted for a server's responses, read from the log (``AgentKeyPinned``) and cached;
    /// `refresh` re-reads them (after a response failed to verify: a rekey may have happened meanwhile). When none is
    /// pinned and an agent on this host published its key in `keys/agents/<server>.pub`, that key is pinned now.
    ///
    /// - Throws: A log error.
    func agentKeys(for server: ServerID, refresh: Bool, now: Date = Date()) async throws
        -> [Curve25519.Signing.PublicKey]
    {
        if !refresh, let cached = state.withLock({ $0.agents[server] }) { return cached }
        var pins: [AgentKeyPinned] = []
        for event in try await log.store.read(stream: KeyEvent.agentStream(server)) {
            if case .keys(.agentKeyPinned(let pin)) = try ReadModels.decode(event).event { pins.append(pin) }
        }
        if pins.isEmpty, let published = Self.coLocatedKey(at: directory.agent(server)) {
            let sealing = Self.coLocatedKey(at: directory.agentSealing(server), sealing: true)
            let pin = AgentKeyPinned(serverID: server, publicKey: published, sealingKey: sealing, source: "co-located")
            try await log.append(.keys(.agentKeyPinned(pin)), metadata: EventMetadata(actor: "backend"))
            pins.append(pin)
        }
        let keys = Self.trusted(pins, now: now).compactMap { try? KeyFiles.publicKey($0) }
        state.withLock { $0.agents[server] = keys }
        return keys
    }

    /// The keys a server's pins make trusted at `now`: the newest pin's key, and the key it replaced while
    /// its `previousValidUntil` has not passed. Pure.
    public static func trusted(_ pins: [AgentKeyPinned], now: Date) -> [String] {
        guard let last = pins.last else { return [] }
        var keys = [last.publicKey]
        if pins.count >= 2, let until = last.previousValidUntil, until > now {
            keys.append(pins[pins.count - 2].publicKey)
        }
        return keys
    }

    /// A key an agent on this host published, when the file is a regular file only its owner may write.
    static func coLocatedKey(at path: String, sealing: Bool = false) -> String? {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_mode & 0o022 == 0,
            let text = try? String(contentsOfFile: path, encoding: .utf8)
        else { return nil }
        let key = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if sealing { return (try? SecretSealing.publicKey(key)) == nil ? nil : key }
        return (try? KeyFiles.publicKey(key)) == nil ? nil : key
    }
}
