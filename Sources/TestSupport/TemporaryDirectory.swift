import Foundation

/// A fresh directory under the system's temporary directory, for tests that need real files.
public struct TemporaryDirectory: Sendable {
    /// The directory's absolute path.
    public let path: String

    /// Makes a new, empty directory named `touchstone-<label>-<random>`.
    public init(_ label: String = "test") {
        let name = "touchstone-\(label)-\(UInt64.random(in: 0...UInt64.max))"
        path = (NSTemporaryDirectory() as NSString).appendingPathComponent(name)
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// A path inside the directory.
    public func file(_ name: String) -> String { path + "/" + name }

    /// Removes the directory and everything in it.
    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Where the built executables are: `$TOUCHSTONE_BIN_DIR` (set by tools/test), else `.build/debug` of this package.
public func builtExecutable(_ name: String, file: String = #filePath) -> String {
    if let directory = ProcessInfo.processInfo.environment["TOUCHSTONE_BIN_DIR"] {
        return directory + "/" + name
    }
    var url = URL(fileURLWithPath: file)
    while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
        url.deleteLastPathComponent()
    }
    return url.appendingPathComponent(".build/debug/\(name)").path
}
