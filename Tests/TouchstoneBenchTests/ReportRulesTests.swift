import Foundation
import Testing

@testable import touchstone_bench

@Suite struct StatsTests {
    @Test func nearestRankQuantiles() {
        let samples = (1...100).map(Double.init).shuffled()
        #expect(Stats.quantile(samples, 0.5) == 50)
        #expect(Stats.quantile(samples, 0.99) == 99)
        #expect(Stats.quantile(samples, 1) == 100)
        #expect(Stats.quantile(samples, 0) == 1)
        #expect(Stats.quantile([7], 0.99) == 7)
        #expect(Stats.quantile([], 0.5) == nil)
        #expect(Stats.median([3, 1, 2]) == 2)
    }
}

@Suite struct ReportRulesTests {
    static let measured = [
        BenchRow(row: 5, metric: "submit → task.started p50 (SQS, ministack)", value: 30, unit: "ms", goal: "<= 1.2x",
                 met: nil, note: "10 tasks"),
        BenchRow(row: 5, metric: "submit → task.started p99 (SQS, ministack)", value: 90, unit: "ms", goal: "—", met: nil),
        BenchRow(row: 6, metric: "tasks/s vs Slurm", value: 300, unit: "tasks/s", goal: ">= 10x", met: nil),
        BenchRow(row: 6, metric: "tasks/s vs Celery (SQS)", value: 300, unit: "tasks/s", goal: ">= 2x", met: nil),
        BenchRow(row: 8, metric: "placements/s", value: 50_000, unit: "placements/s", goal: ">= 20,000/s", met: true),
    ]

    @Test func peersBecomeBaselinesWithRatiosAndJudgedGoals() {
        let peers = [
            PeerResult(peer: "boto3-roundtrip", rounds: 50, p50Milliseconds: 20, p99Milliseconds: 40),
            PeerResult(peer: "slurm", tasks: 1_000, seconds: 40, tasksPerSecond: 25),
            PeerResult(peer: "celery", tasks: 1_000, seconds: 5, tasksPerSecond: 200),
        ]
        let rows = ReportRules.applyPeers(Self.measured, peers: peers, smoke: false)
        #expect(rows[0].baselineValue == 20 && rows[0].ratio == 1.5 && rows[0].met == false)
        #expect(rows[0].note == "10 tasks")
        #expect(rows[1] == Self.measured[1])  // p99 has no baseline
        #expect(rows[2].baselineValue == 25 && rows[2].ratio == 12 && rows[2].met == true)
        #expect(rows[3].baselineValue == 200 && rows[3].ratio == 1.5 && rows[3].met == false)
        #expect(rows[4] == Self.measured[4])
        #expect(rows[2].baseline?.contains("Slurm") == true)
    }

    @Test func aPeerThatFailedOrIsAbsentLeavesNoRatioAndSaysWhy() {
        let peers = [PeerResult(peer: "slurm", error: "slurmctld did not start")]
        let rows = ReportRules.applyPeers(Self.measured, peers: peers, smoke: false)
        #expect(rows[2].baseline == nil && rows[2].baselineValue == nil && rows[2].ratio == nil && rows[2].met == nil)
        #expect(rows[2].note == "baseline slurm did not run: slurmctld did not start")
        #expect(rows[3].ratio == nil && rows[3].note == "baseline celery: no result")
        #expect(rows[0].note == "10 tasks; baseline boto3-roundtrip: no result")
        let noFigure = ReportRules.applyPeers(Self.measured, peers: [PeerResult(peer: "celery", tasks: 3)], smoke: false)
        #expect(noFigure[3].ratio == nil && noFigure[3].note == "baseline celery: its line has no figure")
    }

    @Test func smokeRunsNeverJudge() {
        let peers = [PeerResult(peer: "slurm", tasks: 50, seconds: 2, tasksPerSecond: 25)]
        let rows = ReportRules.applyPeers(Self.measured, peers: peers, smoke: true)
        #expect(rows[2].ratio == 12 && rows[2].met == nil)
    }

    @Test func missingRowsAreAddedWithANoteAndRowsSortStably() {
        let rows = ReportRules.complete(Array(Self.measured.reversed()), expected: [4, 5, 6, 8])
        #expect(rows.map(\.row) == [4, 5, 5, 6, 6, 8])
        #expect(rows[0].value == nil && rows[0].note?.hasPrefix("not measured") == true)
        #expect(rows[1].metric.contains("p99") && rows[2].metric.contains("p50"))  // input order kept within a row
    }

    @Test func peerLinesDecodeAsThePeerScriptsPrintThem() throws {
        let slurm = try JSONDecoder().decode(
            PeerResult.self,
            from: Data(#"{"peer":"slurm","tasks":1000,"seconds":40.5,"tasks_per_s":24.7,"version":"22.05.8"}"#.utf8))
        #expect(slurm.tasksPerSecond == 24.7 && slurm.error == nil)
        let boto = try JSONDecoder().decode(
            PeerResult.self,
            from: Data(#"{"peer":"boto3-roundtrip","rounds":500,"p50_ms":12.5,"p99_ms":30,"mean_ms":14}"#.utf8))
        #expect(boto.p50Milliseconds == 12.5)
    }

    @Test func theTableHasOneLinePerRowAndNumberedNotes() {
        let text = ReportRules.table(ReportRules.complete(Self.measured, expected: [5, 6, 8]))
        let lines = text.split(separator: "\n")
        #expect(lines[0].hasPrefix("# | metric"))
        #expect(lines.count == 2 + 5 + 1 + 1)  // header, rule, 5 rows, "notes", one note
        #expect(text.contains("[1] row 5: 10 tasks"))
        #expect(ReportRules.format(nil) == "—" && ReportRules.format(12_345.6) == "12346" && ReportRules.format(0.1234) == "0.123")
    }
}
