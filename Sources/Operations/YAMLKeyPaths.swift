import Foundation
import Yams

/// The dotted key paths of a YAML mapping's leaves, to find keys a configuration file names but nobody reads.
enum YAMLKeyPaths {
    /// Every leaf's dotted path (`sqs.region`); empty for text that is not a YAML mapping (the file provider reports
    /// that itself).
    static func paths(in text: String) -> [String] {
        guard let node = try? Yams.compose(yaml: text), case .mapping(let mapping) = node else { return [] }
        var out: [String] = []
        func walk(_ mapping: Node.Mapping, prefix: String) {
            for (key, value) in mapping {
                guard let name = key.string else { continue }
                let path = prefix.isEmpty ? name : prefix + "." + name
                if case .mapping(let inner) = value { walk(inner, prefix: path) } else { out.append(path) }
            }
        }
        walk(mapping, prefix: "")
        return out
    }
}

/// One value read straight from a configuration file, for the operator commands that need only the state directory.
public enum SettingsFile {
    /// The text of the scalar at a dotted `key` of a YAML file, or `nil` (no file, no such key, not a scalar).
    public static func text(_ key: String, inFile path: String) -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
            var node = try? Yams.compose(yaml: text)
        else { return nil }
        for component in key.split(separator: ".") {
            guard case .mapping(let mapping) = node, let next = mapping[String(component)] else { return nil }
            node = next
        }
        return node.scalar?.string
    }
}
