// swift-tools-version: 6.2
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "touchstone",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "touchstone", targets: ["touchstone"]),
        .executable(name: "touchstone-agent", targets: ["touchstone-agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // Configuration files (YAML only: the JSON trait is not needed), metrics and their Prometheus export.
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: ["YAML"]),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),  // already swift-configuration's, for YAML
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .target(
            name: "EventStore",
            dependencies: [
                "FileSignals",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .target(name: "Domain", dependencies: ["InputLimits"], swiftSettings: strict),
        .target(name: "InputLimits", swiftSettings: strict),
        .target(
            name: "Operations",
            dependencies: [
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(name: "FileSignals", swiftSettings: strict),
        .target(
            name: "Projections",
            dependencies: ["Domain", "EventStore", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict
        ),
        .target(
            name: "Wire", dependencies: ["Domain", "InputLimits", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        .target(
            name: "Transport",
            dependencies: [
                "FileSignals", "InputLimits",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Orchestrator",
            dependencies: [
                "Domain", "EventStore", "FileSignals", "Projections", "Wire", "Transport", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Agent",
            dependencies: [
                "Domain", "EventStore", "FileSignals", "InputLimits", "Wire", "Transport", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "TouchstoneCLI",
            dependencies: [
                "Domain", "EventStore", "Projections", "Orchestrator", "Transport", "Wire", "FileSignals", "Operations", "InputLimits", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "touchstone",
            dependencies: ["TouchstoneCLI"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "touchstone-agent",
            dependencies: [
                "Agent", "Transport", "Domain", "Wire", "Operations", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "touchstone-chaos",
            dependencies: [
                "Domain", "EventStore", "Projections", "Transport", "Wire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "touchstone-bench",
            dependencies: [
                "Orchestrator", "Agent", "Projections", "EventStore", "Domain", "Transport", "Wire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(name: "touchstone-queue-bench", dependencies: ["Transport"], swiftSettings: strict),
        .target(
            name: "TestSupport",
            dependencies: ["Domain", "EventStore", "Transport", "Wire", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "EventStoreTests",
            dependencies: ["EventStore", "TestSupport", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict
        ),
        .testTarget(name: "InputLimitsTests", dependencies: ["InputLimits", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "DomainTests", dependencies: ["Domain", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "ProjectionsTests",
            dependencies: [
                "Projections", "Domain", "EventStore", "TestSupport", .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WireTests", dependencies: ["Wire", "Domain", "TestSupport", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        .testTarget(
            name: "TransportTests",
            dependencies: [
                "Transport", "TestSupport", .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AgentTests",
            dependencies: ["Agent", "Wire", "Transport", "Domain", "TestSupport", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "OrchestratorTests",
            dependencies: [
                "Orchestrator", "Agent", "Wire", "Transport", "Domain", "Projections", "EventStore", "TestSupport", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "TouchstoneBenchTests", dependencies: ["touchstone-bench"], swiftSettings: strict),
        .testTarget(
            name: "TouchstoneCLITests",
            dependencies: [
                "TouchstoneCLI", "TestSupport", "Operations", "Orchestrator", "Wire", .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
    ]
)

// The libFuzzer harness (issue 12), declared only for `tools/fuzz`, which sets TOUCHSTONE_FUZZ=1 and builds with
// `-sanitize=fuzzer` into its own scratch path `.build-fuzz`; an ordinary `swift build` never sees it.
if Context.environment["TOUCHSTONE_FUZZ"] == "1" {
    package.targets += [
        .target(name: "CFuzzerDriver", path: "fuzz/Sources/CFuzzerDriver"),
        .executableTarget(
            name: "touchstone-fuzz",
            dependencies: ["CFuzzerDriver", "Domain", "Wire", "Transport", "Agent"],
            path: "fuzz/Sources/touchstone-fuzz",
            swiftSettings: strict
        ),
    ]
}
