import ArgumentParser
struct CodecBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "codec")
    func run() async throws {}
}
