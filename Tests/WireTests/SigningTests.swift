@preconcurrency import Crypto
import Domain
import Foundation
import TestSupport
import Testing
import Wire

/// docs/protocol.md, "Signatures": the canonical bytes, the test vector, and what a verifier refuses.
@Suite struct SigningTests {
    /// The vector's key: the seed 00 01 02 … 1f.
    static let key = try! Curve25519.Signing.PrivateKey(rawRepresentation: Data(0..<32))
    static let envelope = RequestEnvelope(
        requestID: RequestID(rawValue: "0190a7e0-0000-7000-8000-000000000001"), server: Fixtures.gpu1, channel: 1,
        epoch: 0, sequence: 1, sentAt: Date(timeIntervalSince1970: 1_800_000_000),
        expiresAt: Date(timeIntervalSince1970: 1_800_000_060), executionSeconds: 10, command: .hello)
    static let unsigned =
        #"{"channel":1,"command":{"kind":"hello"},"epoch":0,"executionSeconds":10,"expiresAt":1800000060000,"#
        + #""requestID":"0190a7e0-0000-7000-8000-000000000001","sentAt":1800000000000,"sequence":1,"server":"gpu-01","#
        + #""v":1}"#
    /// Computed independently with Python's `cryptography` (Ed25519 is deterministic, RFC 8032 §5.1.6).
    static let signature = "8eHdGW5/gMS2pPDDMAlDWIzRVNIZmfNaf5PPE9mhGBw6w+mJEqFEs9iPoZ78CVQ+JNen4BarcC9D2LcTCrNkBQ=="

    @Test func theTestVectorOfDocsProtocolHolds() throws {
        #expect(KeyFiles.text(of: Self.key.publicKey) == "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=")
        #expect(WireCoding.encode(Self.envelope) == Self.unsigned)
        let signed = WireCoding.encodeSigned(Self.envelope, with: Self.key)
        #expect(signed == String(Self.unsigned.dropLast()) + #","signature":""# + Self.signature + #""}"#)
        #expect(
            MessageSigning.verify(signed, context: .request, trusting: [Self.key.publicKey])
                == .valid(unsigned: Self.unsigned))
        // The signed message is still an envelope: the signature member decodes into its field.
        #expect(try WireCoding.decodeRequest(signed).signature == Self.signature)
    }

    @Test func everyByteOfTheMessageIsCovered() {
        let signed = WireCoding.encodeSigned(Self.envelope, with: Self.key)
        let bytes = Array(signed.utf8)
        let signatureStart = bytes.count - Self.signature.utf8.count - 2
        for index in 0..<signatureStart where bytes[index] != UInt8(ascii: "1") {
            var changed = bytes
            changed[index] = UInt8(ascii: "1")
            let text = String(decoding: changed, as: UTF8.self)
            #expect(
                MessageSigning.verify(text, context: .request, trusting: [Self.key.publicKey]) != .valid(unsigned: Self.unsigned),
                "byte \(index) changed and still valid")
        }
    }

    @Test func aNewEnvelopeFieldIsSignedByConstruction() {
        // A field this build does not know, added by a newer sender: it is among the signed bytes.
        let unsigned = String(Self.unsigned.dropLast()) + #","instanceID":"a"}"#
        let signed = MessageSigning.sign(unsigned, context: .request, with: Self.key)
        #expect(MessageSigning.verify(signed, context: .request, trusting: [Self.key.publicKey]) == .valid(unsigned: unsigned))
        let tampered = signed.replacingOccurrences(of: #""instanceID":"a""#, with: #""instanceID":"b""#)
        #expect(MessageSigning.verify(tampered, context: .request, trusting: [Self.key.publicKey]) == .badSignature)
    }

    @Test func unsignedOtherKeysAndTheOtherContextAreRefused() {
        let other = Curve25519.Signing.PrivateKey()
        #expect(MessageSigning.verify(Self.unsigned, context: .request, trusting: [Self.key.publicKey]) == .unsigned)
        let byOther = WireCoding.encodeSigned(Self.envelope, with: other)
        #expect(MessageSigning.verify(byOther, context: .request, trusting: [Self.key.publicKey]) == .badSignature)
        // Trusted while a rotation's overlap lasts: either key.
        #expect(
            MessageSigning.verify(byOther, context: .request, trusting: [Self.key.publicKey, other.publicKey])
                == .valid(unsigned: Self.unsigned))
        // A request signature does not pass as a response's.
        let signed = WireCoding.encodeSigned(Self.envelope, with: Self.key)
        #expect(MessageSigning.verify(signed, context: .response, trusting: [Self.key.publicKey]) == .badSignature)
        // Signature members that are not 64 bytes of base64, or not last.
        for text in [
            String(Self.unsigned.dropLast()) + #","signature":"AAAA"}"#,
            String(Self.unsigned.dropLast()) + #","signature":"not base64!"}"#,
            #"{"signature":"x","v":1}"#, "", "}", #""}"#, "{\"signature\":\"\"}",
        ] {
            #expect(MessageSigning.verify(text, context: .request, trusting: [Self.key.publicKey]) != .valid(unsigned: text))
        }
    }

    @Test func aPrivateKeyFileOthersCanReadIsRefusedNamingTheFileAndMode() throws {
        let directory = TemporaryDirectory("keys")
        defer { directory.remove() }
        let path = directory.file("keys/backend.key")
        let key = try KeyFiles.create(at: path)
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(stat(directory.file("keys"), &info) == 0 && info.st_mode & 0o777 == 0o700)
        #expect(try KeyFiles.loadPrivate(path).rawRepresentation == key.rawRepresentation)
        #expect(throws: KeyError.self) { try KeyFiles.create(at: path) }
        chmod(path, 0o640)
        let error = #expect(throws: KeyError.self) { try KeyFiles.loadPrivate(path) }
        #expect(error?.message.contains(path) == true)
        #expect(error?.message.contains("mode 0640") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("\n") == false)
        // Public keys: KEY, or @FILE with one a line.
        try "# trusted\n\(KeyFiles.text(of: key.publicKey))\n\n".write(toFile: directory.file("k.pub"), atomically: true, encoding: .utf8)
        #expect(try KeyFiles.publicKeys(from: "@" + directory.file("k.pub")).map(KeyFiles.text(of:)) == [KeyFiles.text(of: key.publicKey)])
        #expect(throws: KeyError.self) { try KeyFiles.publicKeys(from: "AAAA") }
    }
}

/// `task submit --secret-env`: HPKE to the agent's X25519 key, bound to the server and the variable's name.
@Suite struct SecretSealingTests {
    @Test func aSealedValueOpensOnlyWithTheKeyForItsServerAndName() throws {
        let key = Curve25519.KeyAgreement.PrivateKey()
        let sealed = try SecretSealing.seal("hunter2", name: "TOKEN", server: Fixtures.gpu1, to: key.publicKey)
        #expect(sealed.encapsulatedKey.count == 32)
        #expect(sealed.ciphertext.range(of: Data("hunter2".utf8)) == nil)
        #expect(try SecretSealing.open(sealed, with: key) == "hunter2")
        #expect(throws: (any Error).self) { try SecretSealing.open(sealed, with: Curve25519.KeyAgreement.PrivateKey()) }
        var moved = sealed
        moved.server = Fixtures.gpu2
        #expect(throws: (any Error).self) { try SecretSealing.open(moved, with: key) }
        var renamed = sealed
        renamed.name = "PATH"
        #expect(throws: (any Error).self) { try SecretSealing.open(renamed, with: key) }
    }
}
