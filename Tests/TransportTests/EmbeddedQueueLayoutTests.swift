import Testing
import Transport

/// ``EmbeddedQueueLayout``: which file holds which queue, and which layout a queue path gets.
@Suite struct EmbeddedQueueLayoutTests {
    @Test(arguments: [
        ("touchstone-gpu-07-1-req.fifo", "touchstone-gpu-07"),
        ("touchstone-gpu-07-12-resp.fifo", "touchstone-gpu-07"),
        ("touchstone-gpu-07-0-req.fifo", "touchstone-gpu-07"),
        ("ts-a-b-c-3-resp.fifo", "ts-a-b-c"),
        ("jobs.fifo", "jobs"),
        ("test-1.fifo", "test-1"),
        ("x-req.fifo", "x-req"),  // no channel number
        ("-1-req.fifo", "-1-req"),  // nothing before the channel
        ("srv-a-req.fifo", "srv-a-req"),  // not digits
        ("srv-1-request.fifo", "srv-1-request"),
        ("srv-1-resp-dlq.fifo", "srv-1-resp-dlq"),
        ("no-suffix", "no-suffix"),
    ]) func groupsOneServersChannels(_ name: String, _ group: String) {
        #expect(EmbeddedQueueLayout.groupName(ofQueue: name) == group)
    }

    @Test(arguments: [
        ("/state/queues.db", "/state/queues.d"),
        ("/state/queues.sqlite", "/state/queues.d"),
        ("/state/queues", "/state/queues.d"),
        ("/state/queues.d", "/state/queues.d.d"),
        ("relative/q.db", "relative/q.d"),
    ]) func putsTheFilesNextToThePath(_ path: String, _ directory: String) {
        #expect(EmbeddedQueueLayout.directory(forPath: path) == directory)
    }

    @Test func choosesTheLayoutFromWhatIsAtThePath() throws {
        #expect(try EmbeddedQueueLayout.choose(path: "/s/queues.db", found: .nothing) == .filePerGroup(directory: "/s/queues.d"))
        #expect(
            try EmbeddedQueueLayout.choose(path: "/s/queues.db", found: .file)
                == .singleFile(path: "/s/queues.db", directory: "/s/queues.d"))
        let error = #expect(throws: QueueError.self) {
            _ = try EmbeddedQueueLayout.choose(path: "/s/queues", found: .directory)
        }
        #expect(error?.code == .invalidParameter)
    }

    @Test func namesTheFileOfAQueueAndTheDoorbells() {
        let perGroup = EmbeddedQueueLayout.filePerGroup(directory: "/s/queues.d")
        #expect(perGroup.file(ofQueue: "ts-gpu-1-0-req.fifo") == "/s/queues.d/ts-gpu-1.db")
        #expect(perGroup.doorbellDirectory == "/s/queues.d/bells")
        let single = EmbeddedQueueLayout.singleFile(path: "/s/queues.db", directory: "/s/queues.d")
        #expect(single.file(ofQueue: "ts-gpu-1-0-req.fifo") == "/s/queues.db")
        #expect(single.doorbellDirectory == "/s/queues.d/bells")
    }

    @Test(arguments: [
        ("SendMessage", QueueOperation.send), ("SendMessageBatch", .send), ("ReceiveMessage", .receive),
        ("DeleteMessage", .delete), ("DeleteMessageBatch", .delete), ("ChangeMessageVisibility", .changeVisibility),
        ("ChangeMessageVisibilityBatch", .changeVisibility), ("GetQueueAttributes", .other), ("GetQueueUrl", .other),
        ("CreateQueue", .other), ("", .other),
    ]) func classifiesSQSActions(_ action: String, _ operation: QueueOperation) {
        #expect(QueueOperation.of(sqsAction: action) == operation)
    }
}
