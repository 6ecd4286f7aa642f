import Foundation

/// A real child process for end-to-end tests, with its output captured to files.
public final class ChildProcess: @unchecked Sendable {
    public let process = Process()
    public let stdoutPath: String
    public let stderrPath: String

    /// Starts `executable` with `arguments`.
    ///
    /// - Throws: When the executable cannot be started.
    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], logDirectory: String, name: String) throws {
        stdoutPath = logDirectory + "/\(name).out"
        stderrPath = logDirectory + "/\(name).err"
        FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }

    /// A test that fails before stopping its child must not leave it running.
    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// Sends a signal.
    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the process to exit, up to `timeout`; SIGKILLs it if it has not.
    ///
    /// - Returns: The exit status, or `nil` if it had to be killed.
    @discardableResult
    public func wait(timeout: Duration = .seconds(30)) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    public var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
    public var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
}

/// Runs a command to completion and returns its exit status and output.
public func runToCompletion(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:], directory: String
) async throws -> (status: Int32, stdout: String, stderr: String) {
    let child = try ChildProcess(
        executable, arguments, environment: environment, logDirectory: directory, name: "run-\(UInt32.random(in: 0...UInt32.max))")
    let status = await child.wait(timeout: .seconds(60)) ?? -9
    return (status, child.stdout, child.stderr)
}
