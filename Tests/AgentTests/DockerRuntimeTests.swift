@testable import Agent
import Domain
import Foundation
import Logging
import TestSupport
import Testing
import Wire

/// What only the docker runtime does: its engine errors, images, the container body, the log stream format.
@Suite(.timeLimit(.minutes(1)))
struct DockerRuntimeTests {
    let logger = Logger(label: "touchstone.agent.tests")

    func makeRuntime(socket: String, options: RuntimeOptions = RuntimeOptions()) -> DockerRuntime {
        DockerRuntime(client: DockerClient(socketPath: socket), scope: "t-docker", options: options, logger: logger)
    }

    @Test(arguments: ["missing", "regular-file"])
    func aDeadSocketIsCannotReachDockerNeverAnEmptyList(kind: String) async throws {
        let directory = TemporaryDirectory("docker-dead")
        defer { directory.remove() }
        let path = directory.file("docker.sock")
        if kind == "regular-file" { _ = FileManager.default.createFile(atPath: path, contents: Data("x".utf8)) }
        let runtime = makeRuntime(socket: path)
        let error = try await #require(throws: RuntimeError.self) { try await runtime.inventory() }
        #expect(error.code == .unreachable)
        #expect(error.description.contains("cannot reach Docker at \(path)"))

        let report = TaskStatusReport(
            taskID: Fixtures.taskA, attempt: 1, state: .running, labels: ["touchstone.directory": directory.path])
        let adoptError = try await #require(throws: RuntimeError.self) { try await runtime.adopt(report) }
        #expect(adoptError.code == .unreachable)

        var spec = TaskSpec(command: ["true"])
        spec.image = "busybox:1"
        let start = await runtime.start(
            TaskAttempt(taskID: Fixtures.taskA, attempt: 1), spec: spec, labels: [:],
            directory: directory.file("task"))
        #expect(start.state == .failedToStart)
        #expect(start.reason?.contains("unreachable: cannot reach Docker") == true, "\(start.reason ?? "")")
    }

    @Test func aTaskWithoutAnImageNeedsADefaultImage() async throws {
        let directory = TemporaryDirectory("docker-noimage")
        defer { directory.remove() }
        // No engine is asked: the start is refused before.
        let report = await makeRuntime(socket: directory.file("none.sock")).start(
            TaskAttempt(taskID: Fixtures.taskA, attempt: 1), spec: TaskSpec(command: ["true"]), labels: [:],
            directory: directory.file("task"))
        #expect(report.state == .failedToStart)
        #expect(report.reason?.contains("no default image") == true)
    }

    @Test func theProcessRuntimeRefusesATaskWithAnImage() async throws {
        let directory = TemporaryDirectory("process-image")
        defer { directory.remove() }
        let runtime = ProcessRuntime(cgroups: nil, scope: "t-process", logger: logger)
        let report = await runtime.start(
            TaskAttempt(taskID: Fixtures.taskA, attempt: 1), spec: TaskSpec(command: ["true"], image: "busybox:1"),
            labels: [:], directory: directory.file("task"))
        #expect(report.state == .failedToStart)
        #expect(report.reason?.contains("--runtime docker") == true)
        #expect(await runtime.runningCount == 0)
    }

    @Test(.enabled(if: DockerTestEngine.enabled, "TOUCHSTONE_DOCKER_SOCKET is not set: run tools/test"))
    func aMissingImageIsAClearErrorUnderEitherPullPolicy() async throws {
        let (socket, _) = try DockerTestEngine.require()
        let directory = TemporaryDirectory("docker-missing")
        defer { directory.remove() }
        for policy in RuntimeOptions.PullPolicy.allCases {
            var options = RuntimeOptions()
            options.pullPolicy = policy
            let report = await makeRuntime(socket: socket, options: options).start(
                TaskAttempt(taskID: .random(), attempt: 1),
                spec: TaskSpec(command: ["true"], image: "touchstone-no-such-image:\(UInt32.random(in: 0...UInt32.max))"),
                labels: [:], directory: directory.file("task-\(policy)"))
            #expect(report.state == .failedToStart)
            #expect(report.reason?.contains("imageMissing") == true, "\(policy): \(report.reason ?? "")")
            if policy == .never { #expect(report.reason?.contains("docker import") == true) }
        }
    }

    @Test(.enabled(if: DockerTestEngine.enabled, "TOUCHSTONE_DOCKER_SOCKET is not set: run tools/test"))
    func theDefaultImageRunsATaskThatNamesNone() async throws {
        let (socket, image) = try DockerTestEngine.require()
        let directory = TemporaryDirectory("docker-default")
        defer { directory.remove() }
        var options = RuntimeOptions()
        options.defaultImage = image
        let attempt = TaskAttempt(taskID: .random(), attempt: 1)
        let ended = try await withSupervisedRuntime(makeRuntime(socket: socket, options: options)) { runtime, exits in
            let started = await runtime.start(
                attempt, spec: TaskSpec(command: ["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; ls /sys/class/net"]),
                labels: [:], directory: directory.path)
            try #require(started.state == .running, "\(started.reason ?? "")")
            return try await exits.wait(for: attempt)
        }
        #expect(ended.exitCode == 0)
        let output = try String(contentsOfFile: directory.file("stdout.log"), encoding: .utf8)
        #expect(output.hasPrefix("/sbin/docker-init -- sh"), "docker-init is PID 1: \(output)")
        #expect(output.hasSuffix("lo\n"), "network mode none: only the loopback interface: \(output)")
    }

    @Test(.enabled(if: DockerTestEngine.enabled, "TOUCHSTONE_DOCKER_SOCKET is not set: run tools/test"))
    func aProcessInsideATaskContainerIsOursForTheGPUInventory() async throws {
        let (socket, image) = try DockerTestEngine.require()
        let directory = TemporaryDirectory("docker-owner")
        defer { directory.remove() }
        let attempt = TaskAttempt(taskID: .random(), attempt: 1)
        try await withSupervisedRuntime(makeRuntime(socket: socket)) { runtime, exits in
            let started = await runtime.start(
                attempt, spec: TaskSpec(command: ["sh", "-c", "sleep 300 & wait"], image: image), labels: [:],
                directory: directory.path)
            let initPID = try #require(started.pid, "\(started.reason ?? "")")
            // docker-init's child (the task's shell), by its host PID.
            var children = ""
            for _ in 0..<100 where children.isEmpty {
                children = (try? String(contentsOfFile: "/proc/\(initPID)/task/\(initPID)/children", encoding: .utf8)) ?? ""
                if children.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
            }
            let shell = try #require(children.split(separator: " ").first.flatMap { Int32($0) })
            let ours = runtime.processOwner(of: [initPID])
            #expect(ours(shell), "a process inside the container belongs to the task")
            #expect(!ours(getpid()), "the test process is not the task's")
            #expect(!ours(1))
            _ = await runtime.stop(attempt, grace: .seconds(1))
            _ = try await exits.wait(for: attempt)
        }
    }

    @Test func theContainerBodyMountsTheWorkspaceCutsTheNetworkAndRequestsTheBookedGPUs() throws {
        var options = RuntimeOptions()
        options.memoryBytes = 512 << 20
        options.nanoCPUs = 1_500_000_000
        let spec = TaskSpec(
            command: ["python3", "train.py"],
            environment: ["SEED": "1", "CUDA_VISIBLE_DEVICES": "2,3", "NVIDIA_VISIBLE_DEVICES": "2,3"])
        let body = DockerRuntime.createBody(
            attempt: TaskAttempt(taskID: Fixtures.taskA, attempt: 2), spec: spec, image: "train:1",
            labels: ["touchstone.task": Fixtures.taskA.rawValue], directory: "/ws/tasks/a/2", options: options)
        #expect(body.image == "train:1")
        #expect(body.command == ["python3", "train.py"])
        #expect(body.workingDirectory == "/workspace")
        #expect(body.hostConfig.binds == ["/ws/tasks/a/2/work:/workspace"])
        #expect(body.hostConfig.networkMode == "none")
        #expect(body.hostConfig.initProcess)
        #expect(body.hostConfig.memory == 512 << 20)
        #expect(body.hostConfig.nanoCPUs == 1_500_000_000)
        #expect(
            body.hostConfig.deviceRequests == [.init(driver: "nvidia", deviceIDs: ["2", "3"], capabilities: [["gpu"]])])
        #expect(body.environment.contains("SEED=1"))
        #expect(body.environment.contains("TOUCHSTONE_ATTEMPT=2"))
        #expect(!body.environment.contains { $0.hasPrefix("CUDA_VISIBLE_DEVICES=") })
        let json = String(decoding: try JSONEncoder().encode(body), as: UTF8.self)
        for key in [#""NetworkMode":"none""#, #""Binds":"#, #""DeviceRequests":"#, #""DeviceIDs":["2","3"]"#, #""Init":true"#] {
            #expect(json.contains(key), "\(key) in \(json)")
        }
        let cpuOnly = DockerRuntime.createBody(
            attempt: TaskAttempt(taskID: Fixtures.taskA, attempt: 1), spec: TaskSpec(command: ["true"]), image: "x",
            labels: [:], directory: "/d", options: RuntimeOptions())
        #expect(cpuOnly.hostConfig.deviceRequests.isEmpty)
        #expect(cpuOnly.hostConfig.memory == 0)
    }

    @Test func demultiplexesLogFramesSplitAnywhere() {
        func frame(_ stream: UInt8, _ text: String) -> [UInt8] {
            let bytes = Array(text.utf8)
            let size = UInt32(bytes.count)
            return [stream, 0, 0, 0, UInt8(size >> 24), UInt8(size >> 16 & 0xff), UInt8(size >> 8 & 0xff), UInt8(size & 0xff)]
                + bytes
        }
        let stream = frame(1, "hello\n") + frame(2, "oops\n") + frame(1, "") + frame(1, String(repeating: "x", count: 300))
        for split in [1, 3, 8, 9, 14, 100, stream.count] {
            var demultiplexer = DockerLogDemultiplexer()
            var out = ""
            var err = ""
            var index = 0
            while index < stream.count {
                let end = min(index + split, stream.count)
                for piece in demultiplexer.feed(Array(stream[index..<end])) {
                    if piece.stream == .stderr { err += String(decoding: piece.bytes, as: UTF8.self) } else {
                        out += String(decoding: piece.bytes, as: UTF8.self)
                    }
                }
                index = end
            }
            #expect(out == "hello\n" + String(repeating: "x", count: 300), "split \(split)")
            #expect(err == "oops\n", "split \(split)")
            #expect(demultiplexer.remainder.isEmpty)
        }
    }

    @Test func splitsImageReferences() {
        #expect(DockerClient.splitReference("busybox") == ("busybox", "latest"))
        #expect(DockerClient.splitReference("busybox:1.36") == ("busybox", "1.36"))
        #expect(DockerClient.splitReference("registry:5000/team/train") == ("registry:5000/team/train", "latest"))
        #expect(DockerClient.splitReference("registry:5000/team/train:2") == ("registry:5000/team/train", "2"))
    }

    @Test func aTaskSpecWithoutAnImageFieldStillDecodes() throws {
        let old = #"{"command":["true"],"environment":{},"files":[],"outputs":[],"gpus":0}"#
        let spec = try JSONDecoder().decode(TaskSpec.self, from: Data(old.utf8))
        #expect(spec.image == nil)
        #expect(spec.command == ["true"])
        let withImage = TaskSpec(command: ["true"], image: "train:1")
        #expect(try JSONDecoder().decode(TaskSpec.self, from: JSONEncoder().encode(withImage)) == withImage)
        #expect(!String(decoding: try JSONEncoder().encode(spec), as: UTF8.self).contains("image"))
        #expect(throws: TaskSpecError.self) { try TaskSpec(command: ["true"], image: "has space").validate() }
    }
}
