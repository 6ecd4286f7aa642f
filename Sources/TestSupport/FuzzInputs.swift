import Foundation

/// The committed inputs of a fuzz target (`tools/fuzz`; docs/input-limits.md): its seed corpus
/// (`fuzz/corpus/TARGET/`) and every crash it found (`fuzz/crashes/TARGET/`), which the regression suites feed to the
/// same parser the target exercises.
public enum FuzzInputs {
    /// The repository's root, found from this file's path.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The files of `fuzz/corpus/TARGET/`, by name.
    public static func seeds(_ target: String) -> [(name: String, bytes: Data)] { files("fuzz/corpus/\(target)") }

    /// The files of `fuzz/crashes/TARGET/`, by name (none when the target never crashed).
    public static func crashes(_ target: String) -> [(name: String, bytes: Data)] { files("fuzz/crashes/\(target)") }

    static func files(_ directory: String) -> [(name: String, bytes: Data)] {
        let url = root.appendingPathComponent(directory)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return names.sorted().compactMap { name in
            (try? Data(contentsOf: url.appendingPathComponent(name))).map { (name, $0) }
        }
    }
}
