import Agent
import Domain
import Foundation
import TestSupport
import Testing

/// The agent's GPU inventory, run against a fake nvidia-smi (this machine has no GPU).
@Suite struct GPUInventoryTests {
    let directory = TemporaryDirectory("gpu")

    @Test func readsSeveralGPUsAndCountsOtherUsersProcesses() async throws {
        let fake = try FakeNvidiaSMI.install(.fourGPUsOneBusy, in: directory.path)
        let reading = await GPUInventory(command: fake).read { _ in false }
        #expect(reading.problem == nil)
        #expect(reading.gpus.map(\.index) == [0, 1, 2, 3])
        #expect(reading.gpus[1].foreignProcesses == 1)
        #expect(reading.gpus[1].memoryUsedMiB == 17321)
        #expect(reading.gpus[1].utilizationPercent == 87)
        #expect(reading.gpus.filter { $0.foreignProcesses == 0 }.count == 3)
        #expect(reading.gpus[0].name == "NVIDIA A100-SXM4-40GB")
    }

    @Test func aComputeProcessOfOurOwnIsNotForeign() async throws {
        let fake = try FakeNvidiaSMI.install(.fourGPUsOneBusy, in: directory.path)
        let reading = await GPUInventory(command: fake).read { $0 == 4242 }
        #expect(reading.gpus.allSatisfy { $0.foreignProcesses == 0 })
    }

    @Test func migDevicesHaveNoMemoryOrUtilisationFigures() async throws {
        let fake = try FakeNvidiaSMI.install(.migDevice, in: directory.path)
        let reading = await GPUInventory(command: fake).read { _ in false }
        #expect(reading.problem == nil)
        #expect(reading.gpus.count == 1)
        #expect(reading.gpus[0].memoryTotalMiB == nil)
        #expect(reading.gpus[0].utilizationPercent == nil)
    }

    @Test func aMissingDriverIsAProblemNotZeroGPUsSilently() async throws {
        let fake = try FakeNvidiaSMI.install(.missingDriver, in: directory.path)
        let reading = await GPUInventory(command: fake).read { _ in false }
        #expect(reading.gpus.isEmpty)
        let problem = try #require(reading.problem)
        #expect(problem.contains("exited(9)"))
    }

    @Test func garbageIsAProblemNamingTheLine() async throws {
        let fake = try FakeNvidiaSMI.install(.garbage, in: directory.path)
        let reading = await GPUInventory(command: fake).read { _ in false }
        #expect(reading.gpus.isEmpty)
        #expect(reading.problem?.contains("line 1 does not parse") == true)
    }

    @Test func noNvidiaSMIMeansNoGPUsAndNoProblem() async {
        let reading = await GPUInventory(command: directory.file("absent/nvidia-smi")).read { _ in false }
        #expect(reading.gpus.isEmpty)
        #expect(reading.problem == nil)
    }
}
