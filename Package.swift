// swift-tools-version:6.0
import PackageDescription

// Upcoming features on for every target, so that each file's imports say what it depends on.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "govex",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "govex", targets: ["govex"]),
        .executable(name: "govex-bench", targets: ["GovexBench"]),
        .library(name: "GovexWire", targets: ["GovexWire"]),
        .library(name: "GovexPostgres", targets: ["GovexPostgres"]),
        .library(name: "GovexCapture", targets: ["GovexCapture"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        .target(
            name: "GovexWire",
            dependencies: [
                "CLZ4", "COpenSSL",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GovexKeyStore",
            dependencies: ["GovexWire"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GovexIdentity",
            dependencies: [
                "GovexKeyStore",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GovexLog",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GovexSystemd",
            dependencies: [.product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GovexPostgres",
            dependencies: ["CLibPQ", "GovexWire"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GovexPolicy",
            dependencies: ["GovexWire", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GovexCapture",
            dependencies: ["GovexWire", "GovexPostgres", "GovexPolicy", "GovexLog", .product(name: "Metrics", package: "swift-metrics")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GovexAPI",
            dependencies: ["GovexWire", "GovexPolicy", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GovexMetrics",
            dependencies: [
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GovexHub",
            dependencies: [
                "GovexWire", "GovexPolicy", "GovexPostgres", "GovexIdentity", "GovexKeyStore", "GovexConfiguration", "GovexAPI", "GovexMetrics", "GovexLog", "GovexSystemd",
                "GovexDiff",
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GovexDiff",
            dependencies: ["GovexWire"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GovexTableDiff",
            dependencies: ["GovexDiff", "GovexWire", "GovexPostgres"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GovexApply",
            dependencies: ["GovexWire", "GovexPostgres"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GovexConfiguration",
            dependencies: [.product(name: "TOMLKit", package: "TOMLKit")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GovexAgent",
            dependencies: [
                "GovexWire", "GovexKeyStore", "GovexPostgres", "GovexCapture", "GovexPolicy", "GovexConfiguration", "GovexIdentity",
                "GovexAPI", "GovexApply", "GovexMetrics", "GovexLog", "GovexSystemd",
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "govex",
            dependencies: [
                "GovexWire", "GovexKeyStore", "GovexPostgres", "GovexAgent", "GovexHub", "GovexIdentity", "GovexDiff", "GovexTableDiff", "GovexMetrics", "GovexLog", "GovexSystemd",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "GovexBench",
            dependencies: [
                "GovexWire", "GovexKeyStore", "GovexPostgres", "GovexCapture", "GovexTestSupport", "GovexHub", "GovexAgent", "GovexApply",
                "GovexIdentity", "GovexAPI", "GovexDiff", "GovexPolicy",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/GovexBench",
            swiftSettings: strictSettings
        ),

        .target(
            name: "GovexTestSupport",
            dependencies: ["GovexWire", "GovexPostgres", .product(name: "Crypto", package: "swift-crypto")],
            path: "Tests/GovexTestSupport",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GovexWireTests",
            dependencies: ["GovexWire", "GovexKeyStore", "GovexTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GovexIdentityTests",
            dependencies: ["GovexIdentity", "GovexKeyStore", "GovexTestSupport",
                           .product(name: "X509", package: "swift-certificates"), .product(name: "SwiftASN1", package: "swift-asn1"),
                           .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GovexApplyTests",
            dependencies: ["GovexApply", "GovexAPI", "GovexPolicy", "GovexWire", "GovexPostgres", "GovexCapture", "GovexKeyStore", "GovexTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GovexHubTests",
            dependencies: ["GovexHub", "GovexAPI", "GovexDiff", "GovexPolicy", "GovexWire", "GovexIdentity", "GovexPostgres", "GovexTestSupport", "GovexConfiguration",
                           .product(name: "X509", package: "swift-certificates"), .product(name: "SwiftASN1", package: "swift-asn1"),
                           .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GovexKeyStoreTests",
            dependencies: ["GovexKeyStore", "GovexWire"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "govex-test-helper",
            dependencies: ["GovexCapture", "GovexWire", "GovexTestSupport"],
            path: "Tests/GovexTestHelper",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GovexDiffTests",
            dependencies: ["GovexDiff", "GovexWire", "GovexTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GovexTableDiffTests",
            dependencies: ["GovexTableDiff", "GovexDiff", "GovexWire", "GovexPostgres", "GovexTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GovexPolicyTests",
            dependencies: ["GovexPolicy", "GovexWire", "GovexTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GovexCaptureTests",
            dependencies: ["GovexCapture", "GovexPolicy", "GovexPostgres", "GovexWire", "GovexTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GovexCommandTests",
            dependencies: ["GovexTestSupport", "GovexCapture", "GovexPostgres", "GovexWire", "GovexHub", "GovexIdentity", "GovexAgent", "GovexConfiguration", "GovexAPI",
                           "GovexMetrics",
                           .product(name: "SwiftASN1", package: "swift-asn1"), .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GovexPostgresTests",
            dependencies: ["GovexPostgres", "GovexWire", "GovexTestSupport"],
            swiftSettings: strictSettings
        ),
    ]
)
