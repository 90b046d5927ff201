// A small process for crash and syscall-order tests: what it does between its
// steps is what the agent does, and a test can kill it at a named crash point.
//
//   govex-test-helper spool-write DIR SEQUENCE    seal a sample batch, spool it, then print "confirm SEQUENCE"
//   govex-test-helper capture CONNINFO DIR SLOT TABLES  capture public.TABLE (key id) for each of the comma-separated
//                                                       TABLES (the first as GA-RK-0001, others as GA-TABLE) into DIR until killed
import GovexCapture
import GovexTestSupport
import GovexWire
#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments
if arguments.count == 6, arguments[1] == "capture" {
    let configuration = CaptureConfiguration(
        nodeID: "gongan", conninfo: arguments[2], slot: arguments[4], publications: ["govex"],
        mappings: arguments[5].split(separator: ",").enumerated().map { index, table in
            TableMapping(resource: index == 0 ? "GA-RK-0001" : "GA-" + table.uppercased(), schema: "public", table: String(table), key: ["id"])
        },
        batchLimits: .init(maxRecords: 100, maxBytes: 1 << 20, maxAge: .milliseconds(200)),
        dataDirectory: arguments[3], signingKey: VectorKeys.gongan)
    do {
        try await CaptureService(configuration: configuration).run(shouldStop: { nil })
    } catch {
        print("govex-test-helper: \(error)")
        exit(1)
    }
    exit(0)
}
guard arguments.count == 4, arguments[1] == "spool-write", let sequence = UInt64(arguments[3]) else {
    print("usage: govex-test-helper spool-write DIR SEQUENCE")
    exit(2)
}
do {
    let spool = try Spool(directory: arguments[2])
    let file = try SampleBatches.seal(SampleBatches.mixedRecords(), key: VectorKeys.gongan, metadata: SampleBatches.metadata(sequence: sequence))
    try spool.append(file, sequence: sequence)
    // Stands in for the standby status update: only now may the source forget these changes.
    let line = "confirm \(sequence)\n"
    _ = line.withCString { write(1, $0, strlen($0)) }
    exit(0)
} catch {
    print("govex-test-helper: \(error)")
    exit(1)
}
