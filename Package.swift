// swift-tools-version: 6.1
import Foundation
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let nioPosix = Target.Dependency.product(name: "NIOPosix", package: "swift-nio")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let crypto = Target.Dependency.product(name: "Crypto", package: "swift-crypto")
let nioSSL = Target.Dependency.product(name: "NIOSSL", package: "swift-nio-ssl")
let metricsCore = Target.Dependency.product(name: "CoreMetrics", package: "swift-metrics")
let prometheus = Target.Dependency.product(name: "Prometheus", package: "swift-prometheus")
let nioHTTP1 = Target.Dependency.product(name: "NIOHTTP1", package: "swift-nio")

var targets: [Target] = [
    // C: CRC32C with SSE4.2 runtime dispatch and a table fallback.
    .target(name: "CCRC32C"),
    .target(name: "Checksums", dependencies: ["CCRC32C"], swiftSettings: swiftSettings),
    // C: liburing through pkg-config, plus shims for its static-inline functions.
    .systemLibrary(name: "CLibURing", pkgConfig: "liburing", providers: [.apt(["liburing-dev"])]),
    .target(name: "CURingShims", dependencies: ["CLibURing"]),

    // C: the system compression libraries (zlib, snappy, lz4, zstd) for reading/rewriting compressed batches.
    .systemLibrary(name: "CCompressionLibs", providers: [.apt(["zlib1g-dev", "libsnappy-dev", "liblz4-dev", "libzstd-dev"])]),
    .target(name: "RecordCompression", dependencies: ["RecordFormat", "CCompressionLibs", nioCore], swiftSettings: swiftSettings),
    .target(name: "KafkaWire", dependencies: [nioCore], exclude: ["ServedAPIs.json"], swiftSettings: swiftSettings),
    .target(name: "RecordFormat", dependencies: ["Checksums", nioCore], swiftSettings: swiftSettings),
    // The one seedable generator (SplitMix64); no dependencies.
    .target(name: "SeededRandom", swiftSettings: swiftSettings),
    .target(name: "DiskIO", dependencies: [logging], swiftSettings: swiftSettings),
    .target(name: "DiskIOTesting", dependencies: ["DiskIO"], swiftSettings: swiftSettings),
    .target(name: "URingIO", dependencies: ["DiskIO", "CLibURing", "CURingShims"], swiftSettings: swiftSettings),
    .target(name: "CommitLog", dependencies: ["SeededRandom", "DiskIO", "RecordFormat", "RecordCompression", logging, nioCore], swiftSettings: swiftSettings),
    .target(name: "BrokerCore", dependencies: ["CommitLog", "RecordFormat", "RecordCompression", "KafkaWire", "DiskIO", "GroupCoordination", "TransactionCoordination", "Security", logging, nioCore, metricsCore], swiftSettings: swiftSettings),
    .target(name: "BrokerServer", dependencies: ["BrokerCore", "CommitLog", "DiskIO", "URingIO", "KafkaWire", "GroupCoordination", "Security", nioCore, nioPosix, nioSSL, logging, metricsCore, prometheus, nioHTTP1], swiftSettings: swiftSettings),
    // SASL mechanisms (PLAIN, SCRAM), the SCRAM credential store; no NIO, no IO.
    .target(name: "Security", dependencies: [crypto], swiftSettings: swiftSettings),
    .target(name: "WireClient", dependencies: ["KafkaWire", "RecordFormat", "Security", nioCore, nioPosix, nioSSL], swiftSettings: swiftSettings),
    .target(name: "LoadGen", dependencies: ["SeededRandom", "WireClient", "Security", "KafkaWire", "RecordFormat", "RecordCompression", nioCore, nioPosix, .product(name: "Histogram", package: "hdrhistogram-swift")], swiftSettings: swiftSettings),
    // The classic consumer-group member behind `petrel consume --group` (a client, over WireClient).
    .target(name: "GroupClient", dependencies: ["WireClient", "KafkaWire", nioCore], swiftSettings: swiftSettings),
    .target(name: "GroupCoordination", dependencies: ["SeededRandom", "KafkaWire", nioCore, logging], swiftSettings: swiftSettings),
    .target(name: "TransactionCoordination", dependencies: ["KafkaWire", "RecordFormat", nioCore, logging], swiftSettings: swiftSettings),
    .target(name: "SegmentTool", dependencies: ["CommitLog", "DiskIO", "RecordFormat", "RecordCompression", nioCore], swiftSettings: swiftSettings),
    .executableTarget(
        name: "PetrelCLI",
        dependencies: [
            "BrokerServer", "Security", "SegmentTool", "WireClient", "GroupClient", "LoadGen", "KafkaWire", "RecordFormat", "RecordCompression", "DiskIO", "URingIO", "CommitLog",
            .product(name: "ArgumentParser", package: "swift-argument-parser"), logging, nioCore, nioPosix,
        ],
        swiftSettings: swiftSettings
    ),

    .target(name: "TestSupport", dependencies: ["RecordFormat", "DiskIO", nioCore], path: "Tests/TestSupport", swiftSettings: swiftSettings),
    .testTarget(name: "ChecksumsTests", dependencies: ["Checksums"], swiftSettings: swiftSettings),
    .testTarget(name: "KafkaWireTests", dependencies: ["SeededRandom", "KafkaWire", nioCore], resources: [.copy("Fixtures")], swiftSettings: swiftSettings),
    .testTarget(name: "RecordFormatTests", dependencies: ["SeededRandom", "RecordFormat", "TestSupport", nioCore], swiftSettings: swiftSettings),
    .testTarget(name: "RecordCompressionTests", dependencies: ["RecordCompression", "RecordFormat", nioCore], swiftSettings: swiftSettings),
    .testTarget(name: "DiskIOTests", dependencies: ["SeededRandom", "DiskIO", "DiskIOTesting", "URingIO", "TestSupport"], swiftSettings: swiftSettings),
    .testTarget(name: "CommitLogTests", dependencies: ["SeededRandom", "CommitLog", "DiskIO", "DiskIOTesting", "URingIO", "RecordFormat", "RecordCompression", "SegmentTool", "TestSupport", nioCore], swiftSettings: swiftSettings),
    .testTarget(name: "SimulationTests", dependencies: ["SeededRandom", "CommitLog", "DiskIO", "DiskIOTesting", "RecordFormat", "RecordCompression", "TestSupport", nioCore], swiftSettings: swiftSettings),
    .testTarget(name: "GroupCoordinationTests", dependencies: ["GroupCoordination", "KafkaWire", nioCore, logging], swiftSettings: swiftSettings),
    .testTarget(name: "TransactionCoordinationTests", dependencies: ["TransactionCoordination", "KafkaWire", nioCore, logging], swiftSettings: swiftSettings),
    .testTarget(name: "LoadGenTests", dependencies: ["SeededRandom", "LoadGen", "WireClient", "Security", "KafkaWire", "RecordFormat", nioCore], swiftSettings: swiftSettings),
    .testTarget(name: "GroupClientTests", dependencies: ["GroupClient", "WireClient", "KafkaWire", nioCore], swiftSettings: swiftSettings),
    .testTarget(name: "SecurityTests", dependencies: ["Security"], swiftSettings: swiftSettings),
    .testTarget(
        name: "BrokerServerTests",
        dependencies: ["BrokerServer", "BrokerCore", "KafkaWire", "Security", nioCore, logging, .product(name: "NIOEmbedded", package: "swift-nio")],
        swiftSettings: swiftSettings),
    .testTarget(name: "BrokerCoreTests", dependencies: ["BrokerCore", "Security", "GroupCoordination", "CommitLog", "KafkaWire", "DiskIO", "RecordFormat", "RecordCompression", "TestSupport", nioCore, nioPosix, logging], swiftSettings: swiftSettings),
]

var dependencies: [Package.Dependency] = [
    .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
    .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
]

// Benchmarks are built only on request, so plain `swift build` / `swift test` never compile them.
if ProcessInfo.processInfo.environment["PETREL_BENCHMARKS"] != nil {
    dependencies.append(.package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]))
    targets.append(.executableTarget(
        name: "StorageBenchmarks",
        dependencies: [
            "CommitLog", "DiskIO", "URingIO", "RecordFormat", nioCore,
            .product(name: "Benchmark", package: "benchmark"),
        ],
        path: "Benchmarks/StorageBenchmarks",
        swiftSettings: swiftSettings,
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    ))
}

// The compaction benchmark is a plain executable (no ordo-one package needed):
// PETREL_BENCHMARKS=1 or PETREL_COMPACTION_BENCH=1 swift run -c release CompactionBenchmark [logMiB] [dir]
if ProcessInfo.processInfo.environment["PETREL_BENCHMARKS"] != nil || ProcessInfo.processInfo.environment["PETREL_COMPACTION_BENCH"] != nil {
    targets.append(.executableTarget(
        name: "CompactionBenchmark",
        dependencies: ["CommitLog", "DiskIO", "RecordFormat", nioCore, logging],
        path: "Benchmarks/CompactionBenchmark",
        swiftSettings: swiftSettings
    ))
}

// Produce validation cost per record (framing + CRC vs the record walk, decompress + walk per codec):
// PETREL_BENCHMARKS=1 or PETREL_VALIDATION_BENCH=1 swift run -c release ValidationBenchmark
if ProcessInfo.processInfo.environment["PETREL_BENCHMARKS"] != nil || ProcessInfo.processInfo.environment["PETREL_VALIDATION_BENCH"] != nil {
    targets.append(.executableTarget(
        name: "ValidationBenchmark",
        dependencies: ["RecordFormat", "RecordCompression", nioCore],
        path: "Benchmarks/ValidationBenchmark",
        swiftSettings: swiftSettings
    ))
}

// Fuzz targets (libFuzzer) are built only on request, by tools/fuzz.sh (PETREL_FUZZ=1 and
// `-sanitize=fuzzer,address`), so plain `swift build` / `swift test` never compile them.
if ProcessInfo.processInfo.environment["PETREL_FUZZ"] != nil {
    targets.append(.target(name: "FuzzSupport", dependencies: ["CommitLog", "DiskIO", "DiskIOTesting", "RecordFormat", logging, nioCore], path: "Tests/Fuzz/FuzzSupport", swiftSettings: swiftSettings))
    let fuzzTargets: [(String, [Target.Dependency])] = [
        ("FuzzRequestFrame", ["FuzzSupport", "KafkaWire", "RecordFormat", "RecordCompression", nioCore]),
        ("FuzzRecordBatch", ["FuzzSupport", "RecordFormat", "RecordCompression", nioCore]),
        ("FuzzSegmentRecovery", ["FuzzSupport", "CommitLog", "DiskIO", "DiskIOTesting", "RecordFormat", "RecordCompression", nioCore]),
        ("FuzzIndexLoading", ["FuzzSupport", "CommitLog", "DiskIO", "DiskIOTesting", "RecordFormat", nioCore]),
    ]
    for (name, dependencies) in fuzzTargets {
        targets.append(.executableTarget(name: name, dependencies: dependencies, path: "Tests/Fuzz/\(name)", swiftSettings: swiftSettings))
    }
}

let package = Package(
    name: "Petrel",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "petrel", targets: ["PetrelCLI"]),
    ],
    dependencies: dependencies,
    targets: targets
)
