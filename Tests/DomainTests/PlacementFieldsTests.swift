import Domain
import Foundation
import Testing

/// The pin, constraints and labels of issue 16: optional, and old payloads without them still decode.
@Suite struct PlacementFieldsTests {
    @Test func oldPayloadsDecodeWithoutPinConstraintsOrLabels() throws {
        let spec = try JSONDecoder().decode(TaskSpec.self, from: Data(#"{"command":["true"]}"#.utf8))
        #expect(spec.server == nil)
        #expect(spec.constraints.isEmpty)
        let attached = try JSONDecoder().decode(
            ServerAttached.self, from: Data(#"{"serverID":"gpu-01","maxTasks":2,"channels":3}"#.utf8))
        #expect(attached.labels == nil)
    }

    @Test func specsWithoutThemEncodeAsBefore() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let text = String(decoding: try encoder.encode(TaskSpec(command: ["true"])), as: UTF8.self)
        #expect(!text.contains("server"))
        #expect(!text.contains("constraints"))
    }

    @Test func theyRoundTrip() throws {
        let spec = TaskSpec(command: ["true"], server: ServerID(rawValue: "gpu-01"), constraints: ["gpu": "a100"])
        #expect(try JSONDecoder().decode(TaskSpec.self, from: JSONEncoder().encode(spec)) == spec)
        let attached = ServerAttached(serverID: ServerID(rawValue: "gpu-01")!, maxTasks: 1, channels: 3, labels: ["gpu": "a100"])
        #expect(try JSONDecoder().decode(ServerAttached.self, from: JSONEncoder().encode(attached)) == attached)
    }

    @Test func labelsAreCheckedForShape() throws {
        let plain = try ServerLabels.parse("gpu=a100")
        #expect(plain.label == "gpu" && plain.value == "a100")
        let dotted = try ServerLabels.parse("zone.name=eu-1=x")
        #expect(dotted.label == "zone.name" && dotted.value == "eu-1=x")
        #expect(throws: TaskSpecError.self) { try ServerLabels.parse("gpu") }
        #expect(throws: TaskSpecError.self) { try ServerLabels.parse("=a100") }
        #expect(throws: TaskSpecError.self) { try ServerLabels.parse("gpu=") }
        #expect(throws: TaskSpecError.self) { try ServerLabels.parse("GPU=a100") }
        #expect(throws: TaskSpecError.self) { try ServerLabels.parse("gpu=a 100") }
        #expect(throws: TaskSpecError.self) { try TaskSpec(command: ["x"], constraints: ["gpu": ""]).validate() }
    }
}

/// Server names look like hostnames; their queue-name form is one-to-one (issue 16).
@Suite struct ServerNameTests {
    @Test func hostnamesAreValidServerNames() {
        for good in ["gpu-01", "g", "7", "dgx1.lab.example.com", "dgx-station", "a.b", String(repeating: "a", count: 63)] {
            #expect(ServerID.isValid(good), "\(good)")
        }
        for bad in ["", "DGX-Station", "GPU", "-gpu", "gpu-", ".gpu", "gpu.", "a..b", "gpu_01", "gpu 01", "gpü", "a/b", String(repeating: "a", count: 64)] {
            #expect(!ServerID.isValid(bad), "\(bad)")
        }
    }

    @Test func queueNameComponentsUseOnlySQSCharactersAndNeverCollide() {
        let names = ["gpu-01", "dgx1.lab", "dgx1-lab", "dgx1.lab.x", "dgx1-lab-x", "dgx1.lab-x", "a.b.c", "a-b.c", "a.b-c", "a-b-c"]
        let components = names.map { ServerID(rawValue: $0)!.queueNameComponent }
        #expect(Set(components).count == names.count)
        for (name, component) in zip(names, components) {
            #expect(component.unicodeScalars.allSatisfy { $0.properties.isASCIIHexDigit || ("a"..."z").contains($0) || ("A"..."Z").contains($0) || $0 == "-" || $0 == "_" || ("0"..."9").contains($0) })
            #expect(ServerID(queueNameComponent: component)?.rawValue == name)
        }
        #expect(ServerID(rawValue: "dgx1.lab")!.queueNameComponent == "dgx1_lab")
    }
}
