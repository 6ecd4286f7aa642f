import Agent
import Foundation
import TestSupport
import Testing

/// The `nvidia-smi` fuzz target's committed inputs (tools/fuzz), through `GPUInventory`'s parsers.
@Suite struct GPUParseFuzzRegressionTests {
    @Test func everySeedParses() throws {
        let seeds = FuzzInputs.seeds("nvidia-smi")
        #expect(seeds.count >= 4)
        for seed in seeds where seed.name.hasPrefix("gpus-") {
            #expect(try !GPUInventory.parseGPUs(String(decoding: seed.bytes, as: UTF8.self)).isEmpty, "\(seed.name)")
        }
        let apps = try #require(seeds.first { $0.name == "compute-apps" })
        #expect(GPUInventory.parseComputeApps(String(decoding: apps.bytes, as: UTF8.self)).map(\.pid) == [4242])
    }

    /// The crash found so far: a memory field of 80 digits, which `Int(_: Double)` trapped on.
    @Test func everyCrashInputParsesOrIsRefused() {
        let crashes = FuzzInputs.crashes("nvidia-smi")
        #expect(crashes.count >= 1)
        for crash in crashes {
            let text = String(decoding: crash.bytes, as: UTF8.self)
            _ = try? GPUInventory.parseGPUs(text)
            _ = GPUInventory.parseComputeApps(text)
        }
    }

    @Test func numbersOutOfRangeReadAsAbsent() throws {
        let huge = "1" + String(repeating: "4", count: 80)
        let gpus = try GPUInventory.parseGPUs("0, GPU-x, A100, \(huge), nan, 1e400\n1, GPU-y, A100, 1e3, -0.5, 99.9")
        #expect(gpus.map(\.memoryTotalMiB) == [nil, 1000])
        #expect(gpus.map(\.memoryUsedMiB) == [nil, 0])
        #expect(gpus.map(\.utilizationPercent) == [nil, 99])
    }
}
