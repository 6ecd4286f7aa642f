import Foundation
import InputLimits

/// The pure parsing of the Docker engine's answers (Docker Engine API v1.41), after checking each body against
/// ``limits`` (issue 12: untrusted JSON is limited before it is decoded).
///
/// Unknown fields are ignored: the engine adds fields within an API version (docs/input-limits.md).
enum DockerAnswers {
    /// 16 MiB, the most ``DockerClient`` reads of an ordinary answer, and depth 32 (a container inspect nests at most
    /// 5 deep in the fields we read, and about 6 in all: `NetworkSettings.Networks.<name>.IPAMConfig`).
    static let limits = JSONLimits(maxBytes: 16 << 20, maxDepth: 32)

    /// Decodes an answer's body.
    ///
    /// - Throws: ``RuntimeError/Code/engine`` for a body over ``limits`` or one that does not decode as `type`.
    static func decode<T: Decodable>(_ type: T.Type, _ data: Data) throws(RuntimeError) -> T {
        do {
            try limits.check(data)
        } catch {
            throw RuntimeError(.engine, "the engine's answer for \(type) is refused: \(error)")
        }
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch {
            throw RuntimeError(.engine, "cannot decode the engine's answer as \(type)", underlying: error)
        }
    }

    /// The `message` of an engine error body (`{"message":"…"}`), else the body's first 500 bytes as text.
    static func message(_ data: Data) -> String {
        if (try? limits.check(data)) != nil,
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let message = object["message"] as? String
        {
            return message
        }
        return String(decoding: data.prefix(500), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The first `error` of an image pull's progress stream (one JSON object per line, `{"error":"…"}` on failure);
    /// `nil` when the pull succeeded. Lines over ``limits`` or not JSON are skipped, as progress lines are.
    static func pullError(_ body: Data) -> String? {
        for line in body.split(separator: UInt8(ascii: "\n")) {
            if (try? limits.check(Data(line))) != nil,
                let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                let message = object["error"] as? String
            {
                return message
            }
        }
        return nil
    }
}
