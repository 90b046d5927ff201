import Foundation
import GovexCapture
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// The real agent under `strace -f`: for every batch it spools, the file's fsync, the
/// rename into the spool and the directory's fsync all finish before the standby status
/// update that lets PostgreSQL forget those changes is sent.
@Suite("Agent syscall order")
struct AgentSyscallOrderTests {
    @Test("for each spooled batch: file fsync → rename → directory fsync → standby update confirming it")
    func spoolBeforeConfirm() async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            let (dataDir, _, path) = try await AgentCommandTests.prepareAgent(database, sql, directoryPrefix: "govex-strace")
            let trace = dataDir + "/agent.strace"
            let traced = try Subprocess.start([
                "strace", "-f", "-y", "-x", "-s", "64", "-o", trace,
                "-e", "trace=fsync,fdatasync,rename,renameat,renameat2,sendto",
                AgentCommandTests.govex, "agent", "--config", path,
            ])
            // Under strace on a loaded machine the agent can take a while to finish its snapshot;
            // the changes below must come after it, or they are part of it.
            for _ in 0..<900 where !((try? AgentState.load(from: dataDir).snapshotComplete) ?? false) {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect((try? AgentState.load(from: dataDir).snapshotComplete) == true, "the snapshot did not complete within 90 s")
            let publicKey = try VerifyingKey(pem: String(contentsOfFile: dataDir + "/keys/signing.pub", encoding: .utf8))
            func spooledRecords() -> Int {
                ((try? AgentCrashTests.readSpool(dataDir + "/spool", key: publicKey).batches) ?? []).reduce(0) { $0 + $1.records.count }
            }
            // Each insert waits for the one before to be spooled, so that they are separate batches even when the machine lags.
            for batch in 0..<3 {
                try await sql.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(\(batch * 100 + 1), \(batch * 100 + 100)) g")
                #expect(try await eventually { spooledRecords() >= (batch + 1) * 100 })
            }
            #expect(try await eventually { spooledRecords() >= 300 })
            try await Task.sleep(for: .seconds(1))   // a standby update after the last batch
            // strace passes SIGTERM on to nobody: stop the agent itself.
            let agentPID = try #require(Self.child(of: traced.pid))
            kill(agentPID, SIGTERM)
            let result = await traced.finish(within: .seconds(60))
            #expect(result.status == 0, "\(result.output)")

            let lines = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").map(String.init)
            let updates = Self.standbyUpdates(lines)
            #expect(!updates.isEmpty, "no standby status update in the trace")
            let entries = try Spool.entries(in: dataDir + "/spool")
            #expect(spooledRecords() == 300)
            #expect(entries.count >= 2, "the snapshot batch and at least one change batch")
            for entry in entries {
                let name = Spool.fileName(entry.sequence)
                let batch = try BatchFile(bytes: try DurableFile.read(dataDir + "/spool/" + name, limit: 1 << 30))
                guard batch.header.kind == .change, let last = try batch.records().last else { continue }
                let fileSync = try #require(lines.firstIndex { $0.contains("fsync(") && $0.contains(".tmp-" + name) }, "no fsync of \(name)")
                let rename = try #require(lines.firstIndex { $0.contains("rename") && $0.contains("/spool/" + name + "\"") }, "no rename of \(name)")
                let directorySync = try #require(lines[rename...].firstIndex { $0.contains("fsync(") && $0.contains("/spool>") }, "no directory fsync after \(name)")
                let directorySynced = Self.completion(of: directorySync, in: lines)
                let confirm = try #require(updates.first { $0.flush >= last.position.commit }, "no standby update confirms \(name)")
                #expect(fileSync < rename && rename < directorySynced && directorySynced < confirm.line,
                        "\(name): fsync at \(fileSync), rename at \(rename), directory fsync done at \(directorySynced), confirmed at \(confirm.line)")
            }
        }
    }

    /// The bytes of a string argument as `strace -x` prints it: printable ASCII as itself,
    /// `\\xHH` for other bytes, C escapes for a few controls; up to the closing quote.
    static func unescape(_ text: Substring) -> [UInt8] {
        var bytes: [UInt8] = []
        var characters = text.utf8.makeIterator()
        while let byte = characters.next(), byte != UInt8(ascii: "\"") {
            guard byte == UInt8(ascii: "\\"), let escaped = characters.next() else { bytes.append(byte); continue }
            switch escaped {
            case UInt8(ascii: "x"):
                let digits = [characters.next(), characters.next()].compactMap { $0 }
                bytes.append(UInt8(String(decoding: digits, as: UTF8.self), radix: 16) ?? 0)
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "v"): bytes.append(0x0B)
            case UInt8(ascii: "f"): bytes.append(0x0C)
            default: bytes.append(escaped)
            }
        }
        return bytes
    }

    static func child(of pid: pid_t) -> pid_t? {
        let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return children.split(separator: " ").first.flatMap { pid_t($0) }
    }

    /// The trace line where a call that strace split into "unfinished" and "resumed" returns.
    static func completion(of index: Int, in lines: [String]) -> Int {
        guard lines[index].hasSuffix("<unfinished ...>"), let pid = lines[index].split(separator: " ").first else { return index }
        return lines[index...].firstIndex { $0.hasPrefix(pid + " ") && $0.contains("resumed>") } ?? lines.count
    }

    /// Standby status updates sent: a CopyData message 'd' of length 38 holding 'r',
    /// the written, flushed and applied positions, the clock and the reply flag.
    static func standbyUpdates(_ lines: [String]) -> [(line: Int, flush: UInt64)] {
        let header: [UInt8] = [0x64, 0, 0, 0, 38, 0x72]
        return lines.enumerated().compactMap { index, line in
            guard line.contains("sendto("), let open = line.firstIndex(of: "\"") else { return nil }
            let bytes = unescape(line[line.index(after: open)...])
            guard bytes.count >= 39, Array(bytes.prefix(6)) == header else { return nil }
            let flush = bytes[14..<22].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            return (index, flush)
        }
    }
}
