import Foundation
import GovexTestSupport
import Testing

/// The README's first command, run non-interactively with the binary this build made
/// (a nested `swift build` inside `swift test` would wait forever on the build lock).
@Suite("Deploy/demo.sh")
struct DemoTests {
    static let script = Subprocess.buildDirectory + "/../../../Deploy/demo.sh"

    static func workDirectory(in output: String) -> String? {
        output.firstMatch(of: /\/tmp\/govex-demo-[A-Za-z0-9]+/).map { String($0.output) }
    }

    @Test("the demo shows the exchange end to end, then removes everything it started")
    func demo() async throws {
        let result = try await Subprocess.run(["bash", Self.script], environment: ["GOVEX_BIN": AgentCommandTests.govex, "DEMO_WAIT": "0"],
                                              within: .seconds(240))
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("demo: the exchange works"))
        #expect(result.output.contains("110105202406180017 | 张小明"), "the newborn arrived at minzheng")
        #expect(!result.output.contains("internal"), "officer_note stays at gongan")
        #expect(result.output.contains("demo: stopped and cleaned up"))
        let work = try #require(Self.workDirectory(in: result.output))
        #expect(!FileManager.default.fileExists(atPath: work), "\(work) removed")
        let leftovers = try await Subprocess.run(["pgrep", "-f", work])
        #expect(leftovers.status == 1, "no process of the demo is left: \(leftovers.output)")
    }

    @Test("Ctrl-C stops the waiting demo and cleans up")
    func interrupted() async throws {
        let demo = try Subprocess.start(["bash", Self.script], environment: ["GOVEX_BIN": AgentCommandTests.govex, "DEMO_WAIT": "1"])
        var ready = false
        for _ in 0..<1200 where !ready {
            ready = (try? String(contentsOfFile: demo.outputPath, encoding: .utf8))?.contains("press Ctrl-C to stop") == true
            if !ready { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ready)
        demo.signal(SIGINT)
        let result = await demo.finish(within: .seconds(60))
        #expect(result.output.contains("demo: stopped and cleaned up"), "\(result.output)")
        let work = try #require(Self.workDirectory(in: result.output))
        #expect(!FileManager.default.fileExists(atPath: work))
        #expect(try await Subprocess.run(["pgrep", "-f", work]).status == 1)
    }
}
