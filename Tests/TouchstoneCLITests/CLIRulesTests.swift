import Domain
import Foundation
@testable import Projections
import Testing

@testable import TouchstoneCLI

/// The pure rules behind issue 16's CLI fixes, exhaustively.
@Suite struct CLIRulesTests {
    @Test func suggestionsFindCloseOptionNames() {
        let known = TaskSubmit.knownOptions
        #expect(Suggestions.closest(to: "--gpu", among: known) == "--gpus")
        #expect(Suggestions.closest(to: "--prority", among: known) == "--priority")
        #expect(Suggestions.closest(to: "--enviroment", among: known) == "--env")  // a prefix of it
        #expect(Suggestions.closest(to: "--verbose", among: known) == nil)
        #expect(Suggestions.closest(to: "--input-dir", among: known) == "--input")
        #expect(Suggestions.closest(to: "--xyzzy", among: known) == nil)
        #expect(Suggestions.closest(to: "", among: known) == nil)
        #expect(Suggestions.closest(to: "runing", among: TaskStatus.allCases.map(\.rawValue)) == "running")
        #expect(Suggestions.editDistance("kitten", "sitting") == 3)
        #expect(Suggestions.editDistance("", "abc") == 3)
        #expect(Suggestions.editDistance("abc", "abc") == 0)
    }

    @Test func taskIDPrefixesResolveUniquelyOrFail() throws {
        let ids = ["tsk-0a1b2c3d4e5f", "tsk-0a1b99999999", "tsk-ffff00000000"].map { TaskID(rawValue: $0) }
        #expect(try TaskIDPrefix.resolve("tsk-ffff00000000", among: ids) == ids[2])
        #expect(try TaskIDPrefix.resolve("tsk-f", among: ids) == ids[2])
        #expect(try TaskIDPrefix.resolve("ff", among: ids) == ids[2])
        #expect(try TaskIDPrefix.resolve("0a1b2", among: ids) == ids[0])
        #expect(throws: CLIError.self) { try TaskIDPrefix.resolve("0a1b", among: ids) }
        #expect(throws: CLIError.self) { try TaskIDPrefix.resolve("tsk-1", among: ids) }
        #expect(throws: CLIError.self) { try TaskIDPrefix.resolve("", among: ids) }
        do {
            _ = try TaskIDPrefix.resolve("tsk-0a", among: ids)
            Issue.record("ambiguous prefix accepted")
        } catch let error as CLIError {
            #expect(error.description.contains("tsk-0a1b2c3d4e5f, tsk-0a1b99999999"))
        }
    }

    @Test func displayWidthCountsWideCharactersTwiceAndMarksZero() {
        #expect(Render.displayWidth("abc") == 3)
        #expect(Render.displayWidth("学習") == 4)
        #expect(Render.displayWidth("한국어") == 6)
        #expect(Render.displayWidth("ｆｕｌｌ") == 8)
        #expect(Render.displayWidth("🚀") == 2)
        #expect(Render.displayWidth("👩‍👩‍👧") == 2)  // one ZWJ sequence
        #expect(Render.displayWidth("🇯🇵") == 2)  // one flag
        #expect(Render.displayWidth("e\u{301}") == 1)  // e + combining acute: one character
        #expect(Render.displayWidth("a\u{200B}b") == 2)  // zero-width space
        #expect(Render.displayWidth("❤️") == 2)  // text-default heart with VS16
        let table = Render.table(["A", "B"], [["学習", "x"], ["ab", "y"], ["🚀", "z"]])
        #expect(table == "A     B\n学習  x\nab    y\n🚀    z")
    }

    @Test func shellQuotingRoundTripsThroughAShell() async throws {
        #expect(ShellQuoting.quote("train.py") == "train.py")
        #expect(ShellQuoting.quote("--lr=0.1") == "--lr=0.1")
        #expect(ShellQuoting.quote("") == "''")
        #expect(ShellQuoting.quote("a b") == "'a b'")
        #expect(ShellQuoting.quote("it's") == "'it'\\''s'")
        #expect(ShellQuoting.quote("$HOME") == "'$HOME'")
        #expect(ShellQuoting.quote("学習") == "学習")
        let words = ["printf", "%s|", "a b", "it's", "", "$HOME", "*", "x\"y", "new\nline", "学習"]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", ShellQuoting.join(words)]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(String(decoding: output, as: UTF8.self) == words.dropFirst(2).map { $0 + "|" }.joined())
    }

    @Test func timeArgumentsAreISO8601OrDurationsAgo() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(TimeArgument.parse("10m", now: now) == now.addingTimeInterval(-600))
        #expect(TimeArgument.parse("90s", now: now) == now.addingTimeInterval(-90))
        #expect(TimeArgument.parse("2h", now: now) == now.addingTimeInterval(-7200))
        #expect(TimeArgument.parse("1d", now: now) == now.addingTimeInterval(-86400))
        #expect(TimeArgument.parse("1.5h", now: now) == now.addingTimeInterval(-5400))
        #expect(TimeArgument.parse("2027-01-15T08:00:00Z", now: now) == Date(timeIntervalSince1970: 1_800_000_000))
        #expect(TimeArgument.parse("2027-01-15T08:00:00.500Z", now: now) == Date(timeIntervalSince1970: 1_800_000_000.5))
        #expect(TimeArgument.parse("2027-01-15", now: now) == Date(timeIntervalSince1970: 1_799_971_200))
        for bad in ["", "10", "m", "-5m", "10x", "yesterday", "2027-13-45"] {
            #expect(TimeArgument.parse(bad, now: now) == nil, "\(bad)")
        }
    }

    func row(_ id: String, _ status: TaskStatus, exit: Int32? = nil, at offset: Double, name: String? = nil, priority: Int = 0)
        -> TaskRow
    {
        var row = TaskRow(
            taskID: TaskID(rawValue: id), name: name, command: ["x"], gpus: 0, status: status, attempt: 1,
            submittedAt: Date(timeIntervalSince1970: offset), outputs: [:])
        row.exitCode = exit
        row.priority = priority
        return row
    }

    @Test func waitExitsWithTheTasksCodeOrOne() {
        #expect(TaskWait.exitStatus([row("a", .succeeded, exit: 0, at: 0)]) == 0)
        #expect(TaskWait.exitStatus([row("a", .failed, exit: 3, at: 0)]) == 3)
        #expect(TaskWait.exitStatus([row("a", .failed, exit: nil, at: 0)]) == 1)
        #expect(TaskWait.exitStatus([row("a", .failed, exit: -1, at: 0)]) == 1)
        #expect(TaskWait.exitStatus([row("a", .cancelled, at: 0)]) == 1)
        #expect(TaskWait.exitStatus([row("a", .lost, at: 0)]) == 1)
        #expect(TaskWait.exitStatus([row("a", .succeeded, exit: 0, at: 0), row("b", .succeeded, exit: 0, at: 1)]) == 0)
        #expect(TaskWait.exitStatus([row("a", .succeeded, exit: 0, at: 0), row("b", .failed, exit: 7, at: 1)]) == 1)
    }

    @Test func listFiltersByAnyStatusSortsAndLimits() {
        let rows = [
            row("tsk-1", .running, at: 1, name: "b", priority: 1), row("tsk-2", .queued, at: 2, name: "a"),
            row("tsk-3", .failed, at: 3, name: "c", priority: 5), row("tsk-4", .queued, at: 4, name: "d"),
        ]
        func ids(_ statuses: Set<TaskStatus>, _ sort: TaskList.SortKey, reverse: Bool = false, limit: Int? = nil) -> [String] {
            TaskList.select(rows, statuses: statuses, sort: sort, reverse: reverse, limit: limit).map(\.taskID.rawValue)
        }
        #expect(ids([], .submitted) == ["tsk-1", "tsk-2", "tsk-3", "tsk-4"])
        #expect(ids([.queued], .submitted) == ["tsk-2", "tsk-4"])
        #expect(ids([.queued, .failed], .submitted) == ["tsk-2", "tsk-3", "tsk-4"])
        #expect(ids([], .status) == ["tsk-2", "tsk-4", "tsk-1", "tsk-3"])
        #expect(ids([], .name) == ["tsk-2", "tsk-1", "tsk-3", "tsk-4"])
        #expect(ids([], .priority) == ["tsk-3", "tsk-1", "tsk-2", "tsk-4"])
        #expect(ids([], .submitted, limit: 2) == ["tsk-3", "tsk-4"])
        // --limit keeps the newest by submission, in either direction, and the head of any other order.
        #expect(ids([], .submitted, reverse: true, limit: 2) == ["tsk-4", "tsk-3"])
        #expect(ids([], .priority, limit: 2) == ["tsk-3", "tsk-1"])
        #expect(ids([], .priority, reverse: true, limit: 1) == ["tsk-4"])
        #expect(ids([], .status, limit: 2) == ["tsk-2", "tsk-4"])
        #expect(ids([.lost], .submitted).isEmpty)
    }

    @Test func jsonCarriesEveryFieldWithNulls() throws {
        struct Inner: Encodable { var a: Int?; var b: String }
        struct Outer: Encodable { var x: Int?; var inner: Inner; var list: [Inner]; var maybe: Inner? }
        let text = Render.json(Outer(x: nil, inner: Inner(a: nil, b: "b"), list: [Inner(a: 1, b: "c")], maybe: Inner(a: nil, b: "d")))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["x"] is NSNull)
        #expect((object["inner"] as? [String: Any])?["a"] is NSNull)
        #expect((object["list"] as? [[String: Any]])?.first?["a"] as? Int == 1)
        #expect((object["maybe"] as? [String: Any])?["a"] is NSNull)
    }

    @Test func theStartRequestSizeGrowsWithTheInlineParts() {
        let small = TaskSubmit.startRequestBytes(TaskSpec(command: ["true"]))
        let big = TaskSubmit.startRequestBytes(TaskSpec(command: ["true"], environment: ["A": String(repeating: "x", count: 10_000)]))
        #expect(small > 0 && small < 4_096)
        #expect(big - small >= 10_000)
    }
}
