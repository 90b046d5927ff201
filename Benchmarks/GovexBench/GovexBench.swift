import ArgumentParser

@main
struct GovexBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "govex-bench",
        abstract: "govex's benchmarks (build with -c release) and developer tools.",
        discussion: """
        Examples:
          swift run -c release govex-bench codec --rows 1000000
          swift run -c release govex-bench capture --rows 1000000
          swift run -c release govex-bench ingest --agents 4 --batches 100
          swift run -c release govex-bench golden --records 1000000
          swift run govex-bench vectors --out Tests/Fixtures/batches
        """,
        subcommands: [CodecBenchmark.self, CaptureBenchmark.self, IngestBenchmark.self, OneSourceBenchmark.self, CopyBenchmark.self, MakeVectors.self]
    )
}
