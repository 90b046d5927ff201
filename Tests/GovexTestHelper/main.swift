// A small process for crash and syscall-order tests: what it does between its
// steps is what the agent does, and a test can kill it at a named crash point.
//
//   govex-test-helper spool-write DIR SEQUENCE    seal a sample batch, spool it, then print "confirm SEQUENCE"
import GovexCapture
import GovexTestSupport
import GovexWire
#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments
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
