import Foundation
import Logging
import Transport

/// `touchstone-bench ROUNDS`: times send → receive → delete round trips of one small message over ``SQSQueue`` against
/// the server in `TOUCHSTONE_SQS_ENDPOINT` (credentials from the environment), and prints
/// `rounds=N total_ms=T per_round_ms=P`. `tools/bench` runs it beside the same loop in boto3.
@main
enum BenchMain {
    static func main() async throws {
        let rounds = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 200
        let environment = ProcessInfo.processInfo.environment
        let transport = try QueueTransport.fromSettings(
            transport: "sqs", queuePath: nil, region: environment["TOUCHSTONE_SQS_REGION"] ?? "us-east-1",
            endpoint: environment["TOUCHSTONE_SQS_ENDPOINT"])
        guard case .sqs(let configuration) = transport else { return }
        let client = try SQSClient(configuration: configuration, logger: Logger(label: "touchstone.bench"))
        let name = "bench-swift-\(UUID().uuidString.prefix(8).lowercased()).fifo"
        try await client.createQueue(named: name, deadLetterQueue: false)
        let queue = try await client.queue(named: name)
        let body = String(repeating: "x", count: 256)
        func round(_ i: Int) async throws {
            _ = try await queue.send(body, groupID: "g", deduplicationID: "d\(i)")
            let messages = try await queue.receive(maxMessages: 1, waitTime: .seconds(1), visibilityTimeout: nil)
            guard let message = messages.first else { throw QueueError(.unexpectedResponse, "round \(i) got nothing") }
            try await queue.delete(receiptHandle: message.receiptHandle)
        }
        for i in 0..<10 { try await round(-1 - i) }  // warm-up: connection, caches
        let clock = ContinuousClock()
        let start = clock.now
        for i in 0..<rounds { try await round(i) }
        let elapsed = clock.now - start
        try await client.deleteQueue(url: queue.url)
        let totalMs = Double(elapsed.components.seconds) * 1_000 + Double(elapsed.components.attoseconds) / 1e15
        let perRound = String(format: "%.3f", totalMs / Double(rounds))
        print("rounds=\(rounds) total_ms=\(String(format: "%.1f", totalMs)) per_round_ms=\(perRound)")
    }
}
