import Foundation
import Transport

#if canImport(Glibc)
    import Glibc
#endif

/// `touchstone-queue-bench`: the embedded queue between processes, as the backend and its agents use it.
///
/// - `roundtrip DIR ROUNDS`: one "agent" child process echoes requests of one server; this process sends a request,
///   long-polls the response and deletes it, one at a time. Prints the round trip's p50, p90, p99 and max in ms.
/// - `throughput DIR AGENTS ROUNDS`: `AGENTS` child processes, each echoing its own server's queues; this process
///   runs one request at a time per server (one outstanding request per channel, as the protocol has), all servers
///   at once, `ROUNDS` round trips per server. Prints round trips per second over all servers.
/// - `idle DIR SECONDS`: an idle agent: long-polls the request queues of its 3 channels (20 s waits) for `SECONDS`,
///   then prints the CPU time it used as a percentage of one core. Run it beside `throughput` to see what other
///   servers' traffic costs an idle agent.
/// - `echo DIR SERVER`: the child: receive a request on `SERVER`'s request queue, send the same body to its response
///   queue, delete the request; until a body `stop` arrives.
///
/// The queue database is `DIR/queues.db`; queue names follow the wire's `<prefix>-<server>-<n>-req.fifo`.
@main
enum QueueBenchMain {
    static func main() async throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let mode = arguments.first, arguments.count >= 3 else {
            FileHandle.standardError.write(Data("usage: touchstone-queue-bench roundtrip DIR ROUNDS | throughput DIR AGENTS ROUNDS | echo DIR SERVER\n".utf8))
            exit(2)
        }
        let path = arguments[1] + "/queues.db"
        switch mode {
        case "echo": try await echo(path: path, server: arguments[2])
        case "idle": try await idle(path: path, seconds: Int(arguments[2])!)
        case "roundtrip":
            let (spans, _) = try await run(path: path, agents: 1, rounds: Int(arguments[2])!)
            let sorted = spans.flatMap { $0 }.sorted()
            func at(_ q: Double) -> String { String(format: "%.3f", sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]) }
            print("roundtrip rounds=\(sorted.count) p50_ms=\(at(0.5)) p90_ms=\(at(0.9)) p99_ms=\(at(0.99)) max_ms=\(at(1))")
        case "throughput":
            let agents = Int(arguments[2])!
            let rounds = Int(arguments[3])!
            let (spans, elapsed) = try await run(path: path, agents: agents, rounds: rounds)
            let total = spans.reduce(0) { $0 + $1.count }
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let sorted = spans.flatMap { $0 }.sorted()
            print(
                "throughput agents=\(agents) round_trips=\(total) seconds=\(String(format: "%.2f", seconds)) "
                    + "per_second=\(String(format: "%.1f", Double(total) / seconds)) "
                    + "p50_ms=\(String(format: "%.3f", sorted[sorted.count / 2]))")
        default:
            FileHandle.standardError.write(Data("unknown mode \(mode)\n".utf8))
            exit(2)
        }
    }

    static func names(_ server: String) -> (request: String, response: String) {
        ("bench-\(server)-1-req.fifo", "bench-\(server)-1-resp.fifo")
    }

    /// Round trips per server, in milliseconds, and the wall time of the measured phase.
    static func run(path: String, agents: Int, rounds: Int) async throws -> ([[Double]], Duration) {
        let store = try EmbeddedQueueStore(path: path)
        defer { store.close() }
        let servers = (0..<agents).map { "s\($0)" }
        var children: [Process] = []
        for server in servers {
            try store.createQueue(name: names(server).request)
            try store.createQueue(name: names(server).response)
            let child = Process()
            child.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            child.arguments = ["echo", (path as NSString).deletingLastPathComponent, server]
            try child.run()
            children.append(child)
        }
        let queues = try servers.map { (try store.queue(named: names($0).request), try store.queue(named: names($0).response)) }
        let clock = ContinuousClock()
        func roundTrip(_ request: EmbeddedQueue, _ response: EmbeddedQueue, _ body: String) async throws -> Double {
            let start = clock.now
            _ = try await request.send(body, groupID: "g", deduplicationID: body)
            while true {
                let messages = try await response.receive(maxMessages: 1, waitTime: .seconds(20), visibilityTimeout: .seconds(30))
                guard let message = messages.first else { continue }
                try await response.delete(receiptHandle: message.receiptHandle)
                guard message.body == body else { throw QueueError(.unexpectedResponse, "expected \(body), got \(message.body)") }
                let span = clock.now - start
                return Double(span.components.seconds) * 1_000 + Double(span.components.attoseconds) / 1e15
            }
        }
        // Warm-up: every child answers once.
        for (index, pair) in queues.enumerated() { _ = try await roundTrip(pair.0, pair.1, "warm-\(index)") }
        let start = clock.now
        let spans = try await withThrowingTaskGroup(of: [Double].self) { group in
            for (index, pair) in queues.enumerated() {
                group.addTask {
                    var spans: [Double] = []
                    for round in 0..<rounds { spans.append(try await roundTrip(pair.0, pair.1, "r-\(index)-\(round)")) }
                    return spans
                }
            }
            return try await group.reduce(into: [[Double]]()) { $0.append($1) }
        }
        let elapsed = clock.now - start
        for pair in queues { _ = try await pair.0.send("stop", groupID: "g", deduplicationID: "stop") }
        for child in children { child.waitUntilExit() }
        return (spans, elapsed)
    }

    static func idle(path: String, seconds: Int) async throws {
        let store = try EmbeddedQueueStore(path: path)
        defer { store.close() }
        var queues: [EmbeddedQueue] = []
        for channel in 0..<3 {
            let name = "bench-idle-\(channel)-req.fifo"
            try store.createQueue(name: name)
            queues.append(try store.queue(named: name))
        }
        func cpuSeconds() -> Double {
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
                + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        }
        let startCPU = cpuSeconds()
        let clock = ContinuousClock()
        let end = clock.now + .seconds(seconds)
        await withTaskGroup(of: Void.self) { group in
            for queue in queues {
                group.addTask {
                    while clock.now < end {
                        let wait = min(Duration.seconds(20), end - clock.now)
                        guard wait > .zero else { return }
                        _ = try? await queue.receive(maxMessages: 1, waitTime: wait, visibilityTimeout: nil)
                    }
                }
            }
        }
        let used = cpuSeconds() - startCPU
        print(
            "idle seconds=\(seconds) channels=3 cpu_ms=\(String(format: "%.1f", used * 1_000)) "
                + "core_percent=\(String(format: "%.3f", used / Double(seconds) * 100))")
    }

    static func echo(path: String, server: String) async throws {
        let store = try EmbeddedQueueStore(path: path)
        defer { store.close() }
        let request = try store.queue(named: names(server).request)
        let response = try store.queue(named: names(server).response)
        while true {
            for message in try await request.receive(maxMessages: 1, waitTime: .seconds(20), visibilityTimeout: .seconds(30)) {
                if message.body == "stop" {
                    try await request.delete(receiptHandle: message.receiptHandle)
                    return
                }
                _ = try await response.send(message.body, groupID: "g", deduplicationID: message.body)
                try await request.delete(receiptHandle: message.receiptHandle)
            }
        }
    }
}
