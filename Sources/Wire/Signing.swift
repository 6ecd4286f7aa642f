@preconcurrency import Crypto
import Foundation

/// Ed25519 signatures over the exact bytes of a queue message (docs/protocol.md, "Signatures").
///
/// A signed message is the unsigned message `P` (a JSON object, UTF-8, ending in `}`) with one member appended as its
/// last: `P` minus its final `}`, then `,"signature":"<S>"}`. `S` is the standard padded base64 of the 64-byte
/// Ed25519 signature (RFC 8032) over `context + P`, where `context` is ``Context/request`` or ``Context/response``.
/// The verifier strips that last member and checks the signature over the remaining bytes exactly as received: every
/// byte of the message but the signature is covered, so a field added to an envelope is signed by construction, and
/// nothing is re-encoded.
public enum MessageSigning {
    /// What a signature is for: a request signed by the backend, or a response signed by an agent. Prefixed to the
    /// signed bytes so that one kind can never pass as the other.
    public enum Context: String, Sendable {
        case request = "touchstone/request/v1\n"
        case response = "touchstone/response/v1\n"
    }

    /// The outcome of checking a message.
    public enum Verdict: Sendable, Equatable {
        /// Signed by one of the trusted keys; `unsigned` is the message without its signature member.
        case valid(unsigned: String)
        /// No signature member at the end of the message.
        case unsigned
        /// A signature member that is not valid base64 of 64 bytes, or that none of the trusted keys made.
        case badSignature
    }

    /// The member appended before the final `}`.
    static let marker = #","signature":""#

    /// Signs an unsigned message.
    ///
    /// - Parameters:
    ///   - unsigned: A JSON object's text ending in `}` with no `signature` member (``WireCoding/encode(_:)`` of an
    ///     envelope whose `signature` is `nil`).
    ///   - context: What the message is.
    ///   - key: The signer's private key.
    /// - Returns: The signed message text, as it goes on a queue.
    public static func sign(_ unsigned: String, context: Context, with key: Curve25519.Signing.PrivateKey) -> String {
        var payload = Data(context.rawValue.utf8)
        payload.append(contentsOf: Array(unsigned.utf8))
        // Signing with a valid key cannot fail (BoringSSL's ED25519_sign returns 1 for every input).
        let signature = try! key.signature(for: payload)
        var text = unsigned
        if text.hasSuffix("}") { text.removeLast() }
        let separator = text.hasSuffix("{") ? String(marker.dropFirst()) : marker
        return text + separator + Data(signature).base64EncodedString() + "\"}"
    }

    /// Checks a message's signature against the trusted keys, before anything else reads it.
    ///
    /// - Parameters:
    ///   - text: The message as received.
    ///   - context: What the message must be.
    ///   - keys: The keys this side pinned (more than one while a rotation's overlap lasts).
    /// - Returns: ``Verdict/valid(unsigned:)`` with the message minus its signature, or why it is not valid.
    public static func verify(_ text: String, context: Context, trusting keys: [Curve25519.Signing.PublicKey])
        -> Verdict
    {
        guard let (unsigned, signature) = split(text) else { return .unsigned }
        guard let bytes = Data(base64Encoded: signature), bytes.count == 64 else { return .badSignature }
        var payload = Data(context.rawValue.utf8)
        payload.append(contentsOf: Array(unsigned.utf8))
        for key in keys where key.isValidSignature(bytes, for: payload) {
            return .valid(unsigned: unsigned)
        }
        return .badSignature
    }

    /// The unsigned message and the base64 signature of a signed one; `nil` when its last member is not a signature.
    static func split(_ text: String) -> (unsigned: String, signature: String)? {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8[utf8.count - 1] == UInt8(ascii: "}"), utf8[utf8.count - 2] == UInt8(ascii: "\"")
        else { return nil }
        // The signature is base64: the last `"` before the closing one opens it.
        var start = utf8.count - 3
        while start >= 0, utf8[start] != UInt8(ascii: "\"") { start -= 1 }
        guard start >= 0 else { return nil }
        let signature = String(decoding: utf8[(start + 1)..<(utf8.count - 2)], as: UTF8.self)
        let head = Array(utf8[..<(start + 1)])
        let withComma = Array(marker.utf8)
        let alone = Array(withComma.dropFirst())
        if head.count >= withComma.count, Array(head.suffix(withComma.count)) == withComma {
            return (String(decoding: head.dropLast(withComma.count), as: UTF8.self) + "}", signature)
        }
        if head.count == alone.count + 1, Array(head.suffix(alone.count)) == alone, head[0] == UInt8(ascii: "{") {
            return ("{}", signature)
        }
        return nil
    }
}

extension WireCoding {
    /// Encodes a request and signs it with the backend's key (``MessageSigning``); the envelope's own `signature` is
    /// ignored.
    public static func encodeSigned(_ request: RequestEnvelope, with key: Curve25519.Signing.PrivateKey) -> String {
        var unsigned = request
        unsigned.signature = nil
        return MessageSigning.sign(encode(unsigned), context: .request, with: key)
    }

    /// Encodes a response and signs it with the agent's key (``MessageSigning``).
    public static func encodeSigned(_ response: ResponseEnvelope, with key: Curve25519.Signing.PrivateKey) -> String {
        MessageSigning.sign(encode(response), context: .response, with: key)
    }
}
