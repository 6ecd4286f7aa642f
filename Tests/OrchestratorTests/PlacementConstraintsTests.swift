import Domain
import Foundation
import Orchestrator
@testable import Projections
import TestSupport
import Testing

/// `task submit --server` / `--constraint` against `server attach --label` (issue 16).
@Suite struct PlacementConstraintsTests {
    func task(pinned: ServerID? = nil, constraints: [String: String]? = nil) -> TaskRow {
        TaskRow(
            taskID: Fixtures.taskA, command: ["x"], gpus: 0, status: .queued, attempt: 0, submittedAt: Fixtures.epoch0,
            outputs: [:], pinnedServer: pinned, constraints: constraints)
    }

    func server(_ id: ServerID = Fixtures.gpu1, labels: [String: String]? = nil) -> ServerRow {
        var row = ServerRow(
            serverID: id, state: .attached, maxTasks: 1, channels: 3, booked: [], running: [], attachedAt: Fixtures.epoch0)
        row.labels = labels
        return row
    }

    @Test func aTaskWithoutPinOrConstraintsFitsEveryServer() {
        #expect(PlacementConstraints.fits(task(), on: server()))
        #expect(PlacementConstraints.fits(task(), on: server(labels: ["gpu": "a100"])))
        #expect(PlacementConstraints.fits(task(constraints: [:]), on: server(Fixtures.gpu2)))
    }

    @Test func aPinnedTaskFitsOnlyItsServer() {
        #expect(PlacementConstraints.fits(task(pinned: Fixtures.gpu1), on: server(Fixtures.gpu1)))
        #expect(!PlacementConstraints.fits(task(pinned: Fixtures.gpu1), on: server(Fixtures.gpu2)))
        #expect(
            PlacementConstraints.mismatch(task(pinned: Fixtures.gpu1), on: server(Fixtures.gpu2))
                == "pinned to gpu-01, not gpu-02")
    }

    @Test func aConstraintNeedsTheLabelWithExactlyThatValue() {
        let a100 = task(constraints: ["gpu": "a100"])
        #expect(PlacementConstraints.fits(a100, on: server(labels: ["gpu": "a100"])))
        #expect(PlacementConstraints.fits(a100, on: server(labels: ["gpu": "a100", "rack": "r1"])))
        #expect(!PlacementConstraints.fits(a100, on: server(labels: ["gpu": "v100"])))
        #expect(!PlacementConstraints.fits(a100, on: server(labels: ["GPU": "a100"])))
        #expect(!PlacementConstraints.fits(a100, on: server(labels: ["gpu": "A100"])))
        #expect(!PlacementConstraints.fits(a100, on: server(labels: [:])))
        #expect(!PlacementConstraints.fits(a100, on: server(labels: nil)))
        #expect(
            PlacementConstraints.mismatch(a100, on: server(labels: ["gpu": "v100"]))
                == "needs gpu=a100; gpu-01 has gpu=v100")
        #expect(PlacementConstraints.mismatch(a100, on: server()) == "needs gpu=a100; gpu-01 has no label gpu")
    }

    @Test func everyConstraintMustHold() {
        let both = task(constraints: ["gpu": "a100", "rack": "r1"])
        #expect(PlacementConstraints.fits(both, on: server(labels: ["gpu": "a100", "rack": "r1"])))
        #expect(!PlacementConstraints.fits(both, on: server(labels: ["gpu": "a100"])))
        #expect(!PlacementConstraints.fits(both, on: server(labels: ["rack": "r1"])))
        #expect(!PlacementConstraints.fits(both, on: server(labels: ["gpu": "a100", "rack": "r2"])))
        // The first unmet constraint in label order is named.
        #expect(PlacementConstraints.mismatch(both, on: server()) == "needs gpu=a100; gpu-01 has no label gpu")
    }

    @Test func aPinAndConstraintsMustBothHold() {
        let pinned = task(pinned: Fixtures.gpu2, constraints: ["gpu": "a100"])
        #expect(PlacementConstraints.fits(pinned, on: server(Fixtures.gpu2, labels: ["gpu": "a100"])))
        #expect(!PlacementConstraints.fits(pinned, on: server(Fixtures.gpu1, labels: ["gpu": "a100"])))
        #expect(!PlacementConstraints.fits(pinned, on: server(Fixtures.gpu2, labels: ["gpu": "h100"])))
    }

    /// Every combination of pin (none, this server, another) × constraint (none, met, wrong value, missing label):
    /// fits exactly when the pin allows it and the constraint is met.
    @Test func theTruthTableIsExhaustive() {
        let pins: [(ServerID?, Bool)] = [(nil, true), (Fixtures.gpu1, true), (Fixtures.gpu2, false)]
        let constraints: [([String: String]?, Bool)] = [
            (nil, true), (["gpu": "a100"], true), (["gpu": "h100"], false), (["zone": "a"], false),
        ]
        let target = server(Fixtures.gpu1, labels: ["gpu": "a100"])
        for (pin, pinOK) in pins {
            for (constraint, constraintOK) in constraints {
                let row = task(pinned: pin, constraints: constraint)
                #expect(PlacementConstraints.fits(row, on: target) == (pinOK && constraintOK), "\(pin as Any) \(constraint as Any)")
                #expect((PlacementConstraints.mismatch(row, on: target) == nil) == (pinOK && constraintOK))
            }
        }
    }
}
