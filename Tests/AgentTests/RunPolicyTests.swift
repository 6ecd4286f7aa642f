import Agent
import Domain
import Foundation
import Testing

/// `RunPolicy.refusal`: what an agent agrees to run, decided from its own flags alone (issue 12 part 3).
@Suite struct RunPolicyTests {
    static let plain = TaskSpec(command: ["true"])
    static func image(_ name: String) -> TaskSpec { TaskSpec(command: ["true"], image: name) }

    @Test func theDefaultPolicyRunsNothing() {
        let policy = RunPolicy()
        #expect(policy.refusal(for: Self.plain, runtime: .process, defaultImage: nil, runAsUID: nil, agentUID: 1000)?
            .contains("--allow-process-runtime") == true)
        #expect(policy.refusal(for: Self.image("busybox"), runtime: .docker, defaultImage: nil, runAsUID: nil, agentUID: 1000)?
            .contains("image busybox is not allowed") == true)
    }

    @Test func theProcessRuntimeRunsTasksAsTheAgentsUserButNeverRootUnlessAllowed() {
        let allowed = RunPolicy(allowProcessRuntime: true)
        #expect(allowed.refusal(for: Self.plain, runtime: .process, defaultImage: nil, runAsUID: nil, agentUID: 1000) == nil)
        let asRoot = allowed.refusal(for: Self.plain, runtime: .process, defaultImage: nil, runAsUID: nil, agentUID: 0)
        #expect(asRoot?.hasPrefix(RunPolicy.refusalPrefix) == true)
        #expect(asRoot?.contains("root") == true)
        #expect(allowed.refusal(for: Self.plain, runtime: .process, defaultImage: nil, runAsUID: 1000, agentUID: 0) == nil)
        let root = RunPolicy(allowProcessRuntime: true, allowRoot: true)
        #expect(root.refusal(for: Self.plain, runtime: .process, defaultImage: nil, runAsUID: nil, agentUID: 0) == nil)
    }

    @Test(arguments: [
        ("busybox", true), ("busybox:latest", false), ("registry.example.com/ml/train:1", true),
        ("registry.example.com/mlx/train:1", false), ("registry.example.com/ml", false), ("default:1", true),
    ])
    func imagesAreAllowedExactlyOrByPrefixOrAsTheDefault(image: String, allowed: Bool) {
        let policy = RunPolicy(allowedImages: ["busybox", "registry.example.com/ml/*"], allowRoot: true)
        let refusal = policy.refusal(for: Self.image(image), runtime: .docker, defaultImage: "default:1", runAsUID: nil, agentUID: 0)
        #expect((refusal == nil) == allowed, "\(image): \(refusal ?? "allowed")")
        #expect(policy.imageAllowed(image, defaultImage: "default:1") == allowed)
    }

    @Test func aContainerRunsAsItsImagesUserOnlyWhenRootIsAllowed() {
        let policy = RunPolicy(allowedImages: ["busybox"])
        let refusal = policy.refusal(for: Self.image("busybox"), runtime: .docker, defaultImage: nil, runAsUID: nil, agentUID: 1000)
        #expect(refusal?.contains("--allow-root") == true)
        #expect(policy.refusal(for: Self.image("busybox"), runtime: .docker, defaultImage: nil, runAsUID: 1000, agentUID: 0) == nil)
        // A task without an image on an agent without a default is the runtime's refusal, not the policy's.
        #expect(policy.refusal(for: Self.plain, runtime: .docker, defaultImage: nil, runAsUID: 1000, agentUID: 0) == nil)
    }
}
