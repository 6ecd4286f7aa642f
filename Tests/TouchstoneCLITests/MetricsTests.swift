import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 15: `serve --metrics-listen` scraped over real HTTP on loopback while a real agent runs a workload, and
/// `--log-format json` from both binaries.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct MetricsTests {
    let directory = TemporaryDirectory("metrics")
    var state: String { directory.file("state") }

    func touchstone(_ arguments: String...) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await touchstone(arguments)
    }

    func touchstone(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await runToCompletion(
            builtExecutable("touchstone"), arguments, environment: ["TOUCHSTONE_STATE_DIR": state],
            directory: directory.path)
    }

    /// A port free on 127.0.0.1 now (the kernel's pick for port 0).
    func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        try #require(bound == 0)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// One scrape with curl: the series by `name{labels}`.
    func scrape(_ port: Int) async throws -> [String: Double] {
        let result = try await runToCompletion(
            "/usr/bin/curl", ["-sS", "--fail", "--max-time", "10", "http://127.0.0.1:\(port)/metrics"],
            directory: directory.path)
        try #require(result.status == 0, "curl: \(result.stderr)")
        var series: [String: Double] = [:]
        for line in result.stdout.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            series[String(line[..<space])] = value
        }
        return series
    }

    func waitFor(_ text: String, in child: ChildProcess) async throws {
        for _ in 0..<400 where !child.stderr.contains(text) {
            try await Task.sleep(for: .milliseconds(50))
        }
        try #require(child.stderr.contains(text), "\(child.stderr)")
    }

    @Test func prometheusTextShowsTheWorkloadAndAgentFiguresMove() async throws {
        #expect(try await touchstone("server", "attach", "gpu-01", "--max-tasks", "2").status == 0)
        let port = try freePort()
        let serve = try ChildProcess(
            builtExecutable("touchstone"),
            [
                "serve", "--state-dir", state, "--status-interval", "0.2", "--metrics-listen", "127.0.0.1:\(port)",
                "--log-format", "json",
            ], logDirectory: directory.path, name: "serve")
        let agent = try ChildProcess(
            builtExecutable("touchstone-agent"),
            [
                "--server", "gpu-01", "--queue-path", state + "/queues.db", "--workspace", directory.file("workspace"),
                "--poll-wait", "1", "--drain-deadline", "0", "--no-cgroups", "--allow-process-runtime", "--allow-root", "--log-format", "json",
            ], logDirectory: directory.path, name: "agent")
        defer {
            serve.signal(SIGKILL)
            agent.signal(SIGKILL)
        }
        try await waitFor("metrics listening", in: serve)
        try await waitFor("agent ready", in: agent)

        let before = try await scrape(port)
        #expect(before["touchstone_tasks{state=\"succeeded\"}"] == 0, "\(before)")
        #expect(before["touchstone_server_max_tasks{server=\"gpu-01\"}"] == 2, "\(before)")

        var ids: [String] = []
        for command in ["true", "true", "exit 3"] {
            let submitted = try await touchstone("task", "submit", "--", "/bin/sh", "-c", command)
            #expect(submitted.status == 0, "\(submitted.stderr)")
            ids.append(submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let waited = try await touchstone(["task", "wait"] + ids)
        #expect(waited.status == 1, "\(waited.stdout)\(waited.stderr)")

        // The agent's figures come with its next heartbeat reply.
        var after = try await scrape(port)
        for _ in 0..<100 where (after["touchstone_agent_tasks{server=\"gpu-01\",state=\"exited\"}"] ?? 0) < 3 {
            try await Task.sleep(for: .milliseconds(100))
            after = try await scrape(port)
        }
        #expect(after["touchstone_tasks{state=\"succeeded\"}"] == 2, "\(after)")
        #expect(after["touchstone_tasks{state=\"failed\"}"] == 1, "\(after)")
        #expect(after["touchstone_tasks{state=\"queued\"}"] == 0, "\(after)")
        #expect(after["touchstone_task_submit_to_start_seconds_count"] == 3, "\(after)")
        let durations = after.filter { $0.key.hasPrefix("touchstone_task_duration_seconds_count") }.values.reduce(0, +)
        #expect(durations == 3, "\(after)")
        let startTrips = after["touchstone_request_round_trip_seconds_count{command=\"startTask\"}"]
            ?? after["touchstone_request_round_trip_seconds_count{command=\"startTasks\"}"] ?? 0
        #expect(startTrips >= 1, "\(after)")
        #expect((after["touchstone_log_append_seconds_count"] ?? 0) > (before["touchstone_log_append_seconds_count"] ?? 0))
        #expect((after["touchstone_agent_resident_bytes{server=\"gpu-01\"}"] ?? 0) > 1_000_000, "\(after)")
        #expect(after["touchstone_agent_tasks{server=\"gpu-01\",state=\"exited\"}"] == 3, "\(after)")
        #expect(after["touchstone_agent_runtime_errors{server=\"gpu-01\"}"] == 0, "\(after)")
        #expect(after["touchstone_server_booked_tasks{server=\"gpu-01\"}"] == 0, "\(after)")

        // Anything but GET /metrics is a 404.
        let other = try await runToCompletion(
            "/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/"],
            directory: directory.path)
        #expect(other.stdout == "404")

        serve.signal(SIGTERM)
        agent.signal(SIGTERM)
        #expect(await serve.wait(timeout: .seconds(20)) == 0)
        #expect(await agent.wait(timeout: .seconds(20)) == 0)
        // --log-format json: every line of both logs is one JSON object.
        for (name, text) in [("serve", serve.stderr), ("agent", agent.stderr)] {
            let lines = text.split(separator: "\n")
            #expect(lines.count >= 2, "\(name): \(text)")
            for line in lines {
                let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object?["message"] is String, "\(name): \(line)")
            }
        }
    }

    @Test func aBadMetricsAddressStopsServeWithOneLine() async throws {
        let result = try await touchstone("serve", "--metrics-listen", "0.0.0.0:9464")
        #expect(result.status != 0)
        #expect(
            result.stderr.contains(
                "metrics.listen = \"0.0.0.0:9464\" (command line (--metrics-listen)) is not allowed: metrics.listen takes a loopback host:port"),
            "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
    }

    @Test func configShowPrintsEachValuesSourceAndHidesSecrets() async throws {
        let file = directory.file("backend.yaml")
        try Data("lostAfter: 120\nsqs:\n  credentials:\n    secretAccessKey: s3cr3t\n    accessKeyId: AKID\n".utf8)
            .write(to: URL(fileURLWithPath: file))
        let result = try await runToCompletion(
            builtExecutable("touchstone"), ["config", "show", "--config", file, "--max-attempts", "4"],
            environment: ["TOUCHSTONE_PACKING": "spread"], directory: directory.path)
        #expect(result.status == 0, "\(result.stderr)")
        let rows = result.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        func row(_ key: String) -> [Substring]? { rows.first { $0.first.map(String.init) == key } }
        #expect(row("lostAfter")?.dropFirst().joined(separator: " ") == "120 file \(file)")
        #expect(row("maxAttempts")?.dropFirst().joined(separator: " ") == "4 command line (--max-attempts)")
        #expect(row("packing")?.dropFirst().joined(separator: " ") == "spread environment ($TOUCHSTONE_PACKING)")
        #expect(row("stopGrace")?.dropFirst().joined(separator: " ") == "10 default")
        #expect(!result.stdout.contains("s3cr3t"))
        #expect(row("sqs.credentials.secretAccessKey")?.dropFirst().first == "<secret>")
    }
}
