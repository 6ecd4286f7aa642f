import Agent
import Domain
import Foundation
import Logging
import Synchronization
import TestSupport
import Testing
import Wire

/// The Docker engine `tools/test` starts (tools/lib/dockerd.sh), read from the environment.
///
/// - `TOUCHSTONE_DOCKER_SOCKET`: the engine's unix socket.
/// - `TOUCHSTONE_TEST_IMAGE`: a busybox image made with `docker import` from a local rootfs.
/// - `TOUCHSTONE_REQUIRE_DOCKER=1` (set by `tools/test`): a missing engine fails the docker tests, never skips them.
enum DockerTestEngine {
    static let environment = ProcessInfo.processInfo.environment
    static let socket = environment["TOUCHSTONE_DOCKER_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
    static let image = environment["TOUCHSTONE_TEST_IMAGE"].flatMap { $0.isEmpty ? nil : $0 }
    /// True under `tools/test`: nothing may be skipped.
    static let required = environment["TOUCHSTONE_REQUIRE_DOCKER"] == "1"
    /// Whether the docker cases run: when an engine is configured, or when `tools/test` requires one (then a missing
    /// engine fails in ``require()``).
    static let enabled = socket != nil || required

    /// The runtimes the conformance suite runs against: always the process runtime, and Docker when enabled.
    static let runtimes: [RuntimeKind] = enabled ? [.process, .docker] : [.process]

    /// The socket and image, or a failure naming the missing variable.
    static func require() throws -> (socket: String, image: String) {
        let socket = try #require(
            socket, "TOUCHSTONE_DOCKER_SOCKET is not set, but TOUCHSTONE_REQUIRE_DOCKER=1: run tools/test")
        let image = try #require(
            image, "TOUCHSTONE_TEST_IMAGE is not set, but TOUCHSTONE_REQUIRE_DOCKER=1: run tools/test")
        return (socket, image)
    }
}

/// One runtime under test, with a scope of its own (so that parallel tests never see each other's work) and a
/// directory for its attempts.
struct RuntimeHarness: Sendable {
    let kind: RuntimeKind
    let scope: String
    let directory: TemporaryDirectory
    let socket: String?
    let image: String?

    init(_ kind: RuntimeKind) throws {
        self.kind = kind
        scope = "t\(UInt32.random(in: 0...UInt32.max))"
        directory = TemporaryDirectory("runtime")
        if kind == .docker {
            let engine = try DockerTestEngine.require()
            socket = engine.socket
            image = engine.image
        } else {
            socket = nil
            image = nil
        }
    }

    /// A new runtime instance of this kind and scope (a second one stands for a restarted agent).
    func makeRuntime() -> any TaskRuntime {
        var options = RuntimeOptions()
        options.kind = kind
        options.dockerSocket = socket ?? ""
        return options.makeRuntime(scope: scope, useCgroups: true, logger: Logger(label: "touchstone.agent.tests"))
    }

    /// A spec running `script` with `sh -c` (host `/bin/sh`, or the test image's busybox sh).
    func spec(_ script: String, outputs: [String] = [], timeoutSeconds: Int? = nil) -> TaskSpec {
        TaskSpec(command: ["sh", "-c", script], outputs: outputs, timeoutSeconds: timeoutSeconds, image: image)
    }

    /// The (task, attempt) with a fresh task ID.
    func attempt() -> TaskAttempt { TaskAttempt(taskID: .random(), attempt: 1) }

    func taskDirectory(_ attempt: TaskAttempt) -> String {
        directory.file("tasks/\(attempt.taskID)/\(attempt.attempt)")
    }

    func labels(_ attempt: TaskAttempt) -> [String: String] {
        [
            "touchstone.backend": "tests", "touchstone.task": attempt.taskID.rawValue,
            "touchstone.attempt": String(attempt.attempt), "touchstone.request": RequestID.make().rawValue,
            "touchstone.directory": taskDirectory(attempt), "touchstone.outputs": "",
        ]
    }

    /// Starts an attempt and checks that it runs.
    func start(_ runtime: any TaskRuntime, _ attempt: TaskAttempt, _ spec: TaskSpec) async throws -> TaskStatusReport {
        let report = await runtime.start(
            attempt, spec: spec, labels: labels(attempt), directory: taskDirectory(attempt))
        try #require(report.state == .running, "\(kind): the start failed: \(report.reason ?? "")")
        return report
    }

    /// Waits until a file exists in the attempt's working directory.
    func waitForFile(_ attempt: TaskAttempt, _ name: String, timeout: Duration = .seconds(20)) async throws {
        let path = taskDirectory(attempt) + "/work/" + name
        let deadline = ContinuousClock.now + timeout
        while !FileManager.default.fileExists(atPath: path) {
            try #require(ContinuousClock.now < deadline, "\(kind): \(name) did not appear within \(timeout)")
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Writes a file into the attempt's working directory.
    func touch(_ attempt: TaskAttempt, _ name: String) {
        _ = FileManager.default.createFile(atPath: taskDirectory(attempt) + "/work/" + name, contents: Data())
    }

    func read(_ attempt: TaskAttempt, _ name: String) -> String? {
        try? String(contentsOfFile: taskDirectory(attempt) + "/" + name, encoding: .utf8)
    }
}

/// The reports a runtime's supervisor delivered through `onExit`.
final class ExitRecorder: Sendable {
    private let reports = Mutex<[TaskAttempt: TaskStatusReport]>([:])

    func record(_ report: TaskStatusReport) { reports.withLock { $0[report.key] = report } }

    func report(_ attempt: TaskAttempt) -> TaskStatusReport? { reports.withLock { $0[attempt] } }

    /// Waits for an attempt's end.
    func wait(for attempt: TaskAttempt, timeout: Duration = .seconds(30)) async throws -> TaskStatusReport {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let report = report(attempt) { return report }
            try #require(ContinuousClock.now < deadline, "no end reported for \(attempt) within \(timeout)")
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// Runs `body` with a runtime whose supervisor runs alongside; afterwards kills what still runs and ends it.
func withSupervisedRuntime<T: Sendable>(
    _ runtime: any TaskRuntime, _ body: (any TaskRuntime, ExitRecorder) async throws -> T
) async throws -> T {
    let exits = ExitRecorder()
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await runtime.run { report in exits.record(report) } }
        do {
            let result = try await body(runtime, exits)
            await cleanUp(runtime)
            try await group.waitForAll()
            return result
        } catch {
            await cleanUp(runtime)
            try? await group.waitForAll()
            throw error
        }
    }
}

private func cleanUp(_ runtime: any TaskRuntime) async {
    await runtime.killAll()
    let deadline = ContinuousClock.now + .seconds(20)
    while await runtime.runningCount > 0, ContinuousClock.now < deadline {
        try? await Task.sleep(for: .milliseconds(50))
    }
    runtime.finish()
}
