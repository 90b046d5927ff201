import Foundation
import GovexCapture
import GovexTestSupport
import GovexWire
import Testing

@Suite("Spool")
struct SpoolTests {
    static let helper = Subprocess.buildDirectory + "/govex-test-helper"

    static func sample(_ sequence: UInt64) throws -> [UInt8] {
        try SampleBatches.seal(SampleBatches.mixedRecords(), key: VectorKeys.gongan, metadata: SampleBatches.metadata(sequence: sequence))
    }

    @Test("batches are kept in sequence, survive reopening, and leave only when acknowledged")
    func appendReopenAcknowledge() throws {
        let directory = Subprocess.temporaryDirectory("govex-spool") + "/spool"
        do {
            let spool = try Spool(directory: directory)
            for sequence in UInt64(1)...5 { try spool.append(try Self.sample(sequence), sequence: sequence) }
            #expect(throws: FileError.self) { try spool.append(try Self.sample(7), sequence: 7) }
        }
        let reopened = try Spool(directory: directory)
        #expect(reopened.entries.map(\.sequence) == [1, 2, 3, 4, 5])
        #expect(try reopened.read(3) == (try Self.sample(3)))
        try reopened.acknowledge(through: 2)
        #expect(try Spool.entries(in: directory).map(\.sequence) == [3, 4, 5])
        let mode = try FileManager.default.attributesOfItem(atPath: reopened.path(of: 3))[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test("a second writer on the same spool is refused while the first holds it")
    func oneWriter() throws {
        let directory = Subprocess.temporaryDirectory("govex-spool") + "/spool"
        let first = try Spool(directory: directory)
        try first.append(try Self.sample(1), sequence: 1)
        #expect(throws: FileError.self) { _ = try Spool(directory: directory, lockWait: .milliseconds(100)) }
        #expect(try Spool.entries(in: directory).map(\.sequence) == [1])
    }

    @Test("a gap left by a hand-deleted batch is reported, not skipped")
    func gapIsAnError() throws {
        let directory = Subprocess.temporaryDirectory("govex-spool") + "/spool"
        do {
            let spool = try Spool(directory: directory)
            for sequence in UInt64(1)...3 { try spool.append(try Self.sample(sequence), sequence: sequence) }
            try FileManager.default.removeItem(atPath: spool.path(of: 2))
        }
        #expect {
            _ = try Spool(directory: directory)
        } throws: { error in
            (error as? FileError)?.reason.contains("leave a gap") == true
        }
    }

    @Test("a spool is full at its batch or byte limit")
    func limits() throws {
        let directory = Subprocess.temporaryDirectory("govex-spool") + "/spool"
        let spool = try Spool(directory: directory, limits: Spool.Limits(maxBatches: 2, maxBytes: 1 << 30))
        try spool.append(try Self.sample(1), sequence: 1)
        #expect(!spool.isFull)
        try spool.append(try Self.sample(2), sequence: 2)
        #expect(spool.isFull)
    }

    @Test("killed at each step, the spool holds the whole batch or nothing", arguments: [
        ("spool.before-write", false), ("spool.after-write", false), ("spool.after-fsync", false),
        ("spool.after-rename", true), ("spool.after-directory-fsync", true),
    ])
    func crashPoints(point: String, batchSurvives: Bool) throws {
        let directory = Subprocess.temporaryDirectory("govex-spool") + "/spool"
        let result = try Subprocess.run([Self.helper, "spool-write", directory, "1"], environment: ["GOVEX_CRASH_AT": point])
        #expect(result.status == 134, "the helper must die at \(point): \(result.output)")
        #expect(!result.output.contains("confirm 1"), "nothing is confirmed before the batch is durable")
        let spool = try Spool(directory: directory)
        #expect(spool.entries.map(\.sequence) == (batchSurvives ? [1] : []))
        if batchSurvives {
            let batch = try BatchFile(bytes: try spool.read(1))
            try batch.verify(with: VectorKeys.gongan.publicKey)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).allSatisfy { !$0.hasPrefix(".tmp-") })
    }

    @Test("syscall order: file fsync, then rename, then directory fsync, then the confirmation")
    func syscallOrder() throws {
        let directory = Subprocess.temporaryDirectory("govex-spool") + "/spool"
        let trace = directory + ".strace"
        let result = try Subprocess.run(["strace", "-f", "-o", trace, "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2,write",
                                         Self.helper, "spool-write", directory, "9"])
        #expect(result.status == 0, "\(result.output)")
        let lines = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").map(String.init)
        func index(_ predicate: (String) -> Bool) -> Int? { lines.firstIndex(where: predicate) }
        // The descriptors strace reports for the temporary file and the directory.
        let tmpOpen = try #require(index { $0.contains("openat(") && $0.contains(".tmp-00000000000000000009.gvxb") })
        let tmpFD = try #require(lines[tmpOpen].split(separator: "=").last?.trimmingCharacters(in: .whitespaces))
        let fileSync = try #require(lines[tmpOpen...].firstIndex { $0.contains("fsync(\(tmpFD))") })
        let renamed = try #require(index { $0.contains("rename") && $0.contains("00000000000000000009.gvxb") })
        let dirOpen = try #require(lines[renamed...].firstIndex { $0.contains("openat(") && $0.contains("O_DIRECTORY") })
        let dirFD = try #require(lines[dirOpen].split(separator: "=").last?.trimmingCharacters(in: .whitespaces))
        let dirSync = try #require(lines[dirOpen...].firstIndex { $0.contains("fsync(\(dirFD))") })
        let confirm = try #require(index { $0.contains("write(1, \"confirm 9") })
        #expect(fileSync < renamed && renamed < dirSync && dirSync < confirm, "order: \(fileSync) \(renamed) \(dirSync) \(confirm)")
    }
}
