@testable import Agent
import Domain
import Testing
import TestSupport
import Wire

/// The agent's own capacity rule (issue 17 part 1), over counts, GPUs and views.
@Suite struct CapacityGuardTests {
    static func attempt(_ n: Int) -> TaskAttempt { TaskAttempt(taskID: Fixtures.taskA, attempt: n) }
    static func view(max: Int, version: Int64 = 5, booked: [Int] = []) -> CapacityView {
        CapacityView(maxTasks: max, bookedGPUs: booked, serverVersion: version)
    }

    @Test(arguments: 0...3, 0...3)
    func aStartPastTheLastKnownMaxTasksIsRefused(max: Int, held: Int) {
        let holding = Dictionary(uniqueKeysWithValues: (0..<held).map { (Self.attempt($0 + 1), [Int]()) })
        let verdict = CapacityGuard.admit(gpus: [], known: Self.view(max: max), held: holding)
        if held < max {
            #expect(verdict == .admit)
        } else {
            guard case .refuse(let message) = verdict else {
                Issue.record("admitted \(held + 1) of max \(max)")
                return
            }
            #expect(message.contains("max_tasks is \(max)"))
        }
    }

    @Test func withoutAKnownLimitOnlyTheGPURuleApplies() {
        let holding = Dictionary(uniqueKeysWithValues: (1...50).map { (Self.attempt($0), [Int]()) })
        #expect(CapacityGuard.admit(gpus: [0], known: nil, held: holding) == .admit)
        #expect(CapacityGuard.admit(gpus: [0], known: nil, held: [Self.attempt(1): [0]]) != .admit)
    }

    @Test(arguments: [[0], [1], [0, 1], [2, 3], [3]] as [[Int]])
    func aStartOntoAHeldGPUIsRefusedNamingTheHolder(gpus: [Int]) {
        let holding: [TaskAttempt: [Int]] = [Self.attempt(1): [0, 1], Self.attempt(2): []]
        let verdict = CapacityGuard.admit(gpus: gpus, known: Self.view(max: 8, booked: [2]), held: holding)
        if Set(gpus).isDisjoint(with: [0, 1]) {
            #expect(verdict == .admit)
        } else {
            guard case .refuse(let message) = verdict else {
                Issue.record("GPU reuse admitted")
                return
            }
            #expect(message.contains("held by \(Self.attempt(1))"))
            #expect(message.contains("books GPUs [2]"))
        }
    }

    @Test func theNewestViewIsKeptAndAnOlderOneNeverLowersIt() {
        let older = Self.view(max: 1, version: 3)
        let newer = Self.view(max: 4, version: 9)
        #expect(CapacityGuard.newest(nil, older) == older)
        #expect(CapacityGuard.newest(older, newer) == newer)
        #expect(CapacityGuard.newest(newer, older) == newer)
        #expect(CapacityGuard.newest(newer, nil) == newer)
        #expect(CapacityGuard.newest(nil, nil) == nil)
    }

    @Test func anAttemptsGPUsAreReadFromItsLabel() {
        #expect(CapacityGuard.gpus(inLabels: [CapacityGuard.label: "0,3"]) == [0, 3])
        #expect(CapacityGuard.gpus(inLabels: [CapacityGuard.label: ""]).isEmpty)
        #expect(CapacityGuard.gpus(inLabels: [:]).isEmpty)
    }

    @Test(arguments: [(255, false, true), (255, true, false), (0, false, false), (137, false, false), (nil, false, false)] as [(Int32?, Bool, Bool)])
    func aContainerMarked255ByDockerDiedWithTheHost(code: Int32?, oom: Bool, died: Bool) {
        #expect(DockerRuntime.diedWithTheHost(exitCode: code, oomKilled: oom) == died)
    }
}
