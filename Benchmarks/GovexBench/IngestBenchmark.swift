import ArgumentParser
import Crypto
import Foundation
import GovexAgent
import GovexHub
import GovexIdentity
import GovexPostgres
import GovexTestSupport
import GovexAPI
import GovexWire
import SwiftASN1

/// The hub's ingest on loopback: N agents push their batches at once over mutual TLS;
/// each batch is verified, stored with its receipt and applied to the hub's copy of the
/// resource in one transaction. Reference, same run, same server: `psql` copying the
/// very same batch files into a bytea table (the storage floor).
struct IngestBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Agents push signed batches to the hub concurrently; compare with psql storing the same blobs.",
        discussion: "Uses the server in GOVEX_TEST_PG (superuser conninfo) or starts a throwaway cluster.")

    @Option(help: "Agents pushing at once.")
    var agents = 4

    @Option(help: "Batches per agent.")
    var batches = 100

    @Option(help: "Records per batch.")
    var records = 10_000

    func run() async throws {
        #if DEBUG
        print("warning: this is a debug build; run with `swift run -c release govex-bench ingest` for real figures")
        #endif
        let nodes = (1...agents).map { "agent\($0)" }
        let keys = Dictionary(uniqueKeysWithValues: nodes.map { ($0, VectorKeys.ed25519(seed: Array(repeating: UInt8($0.count + Int($0.last!.asciiValue!)), count: 32))) })
        progress("sealing \(agents * batches) batches of \(records) realistic records")
        var files: [String: [[UInt8]]] = [:]
        var generator = RealisticRows()
        for node in nodes {
            var sealed: [[UInt8]] = []
            for sequence in 1...batches {
                var encoder = BatchBodyEncoder(capacity: records * 200)
                for ordinal in 0..<records {
                    var record = generator.record(ordinal: ordinal, commit: 0x1_0000_0000 + UInt64(sequence) * 0x1000)
                    record.resource = "R-" + node
                    try encoder.append(record)
                }
                sealed.append(try BatchSealer.seal(encoder, metadata: BatchMetadata(nodeID: node, nodeEpoch: 1, sequence: UInt64(sequence),
                                                                                  completeThrough: 0, createdAt: 0), key: keys[node]!))
            }
            files[node] = sealed
        }
        let totalBytes = files.values.joined().reduce(0) { $0 + $1.count }
        let totalRecords = agents * batches * records

        try await TestPostgres.withDatabase { database in
            try await PostgresConnection.with(database.conninfo) { sql in
                try await HubSchema.migrate(sql)
                try await HubSchema.ensurePartitions(sql)
                for node in nodes {
                    try await HubStore.addNode(node, on: sql)
                    try await HubStore.registerKey(keys[node]!.publicKey, for: node, on: sql)
                    // Every column the records carry: the hub rejects a batch with one the catalog does not list.
                    try await Catalog.upsert(Catalog.Resource(code: "R-" + node, name: node, provider: node, share: "unconditional",
                                                              key: ["id_number"], columns: RealisticRows.columnNames), on: sql)
                }
            }
            let ca = try CertificateAuthority.create(commonName: "bench CA")
            let serverKey = P256.Signing.PrivateKey()
            let serverCertificate = try ca.issueServerCertificate(publicKey: serverKey.publicKey, hostnames: [], addresses: ["127.0.0.1"])
            let settings = HubServer.Settings(host: "127.0.0.1", port: 0, serverCertificatePEM: try serverCertificate.serializeAsPEM().pemString,
                                              serverKeyPEM: serverKey.pemRepresentation, ca: ca, hubSigningKey: VectorKeys.hub)
            let pool = ConnectionPool(conninfo: database.conninfo, size: agents * 2)
            let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
            let server = Task { try await HubServer(settings: settings, pool: pool).run { continuation.yield($0) } }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw ValidationError("the hub did not start") }

            var clients: [String: HubClient] = [:]
            for node in nodes {
                let (key, request) = try NodeIdentity.makeRequest(nodeID: node)
                let certificate = try ca.issueClientCertificate(for: request, nodeID: node)
                // As enrollment records it: the hub's gate admits only a node's current certificate.
                try await PostgresConnection.with(database.conninfo) { sql in try await NodeCertificates.recordCurrent(certificate, node: node, on: sql) }
                clients[node] = try HubClient(baseURL: "https://127.0.0.1:\(port)", caPEM: try ca.certificate.serializeAsPEM().pemString,
                                              identity: .init(certificatePEM: try certificate.serializeAsPEM().pemString, keyPEM: key.pemRepresentation))
            }

            progress("pushing: \(agents) agents × \(batches) batches × \(records) records, \(String(format: "%.1f", Double(totalBytes) / 1e6)) MB")
            let start = ContinuousClock.now
            let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
                for node in nodes {
                    let client = clients[node]!, batches = files[node]!
                    group.addTask {
                        var latencies: [Duration] = []
                        for bytes in batches {
                            let sent = ContinuousClock.now
                            let response = try await client.post("/v1/batches", body: bytes, contentType: "application/octet-stream")
                            guard response.status == 200 else { throw ValidationError("HTTP \(response.status): \(response.text)") }
                            guard try SignedReceipt(wire: response.body).verified(with: VectorKeys.hub.publicKey).status == .accepted else {
                                throw ValidationError("rejected: \(response.text)")
                            }
                            latencies.append(ContinuousClock.now - sent)
                        }
                        return latencies
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }.sorted()
            }
            let elapsed = ContinuousClock.now - start
            for client in clients.values { await client.shutdown() }
            server.cancel()
            _ = await server.result

            let floor = try await Self.storageFloor(files: files.values.joined().map { $0 }, conninfo: database.conninfo)
            await pool.close()

            let p50 = latencies[latencies.count / 2], p99 = latencies[min(latencies.count - 1, latencies.count * 99 / 100)]
            print("")
            print("govex ingest benchmark: \(agents) agents × \(batches) batches × \(records) records over mutual TLS on loopback, "
                  + "\(ProcessInfo.processInfo.activeProcessorCount) cores")
            print(String(format: "hub ingest (verify, store, receipt, apply):  %9.0f records/s  %7.1f MB/s  (%.2f s)",
                         Double(totalRecords) / elapsed.seconds, Double(totalBytes) / 1e6 / elapsed.seconds, elapsed.seconds))
            print(String(format: "receipt latency:                            p50 %.0f ms, p99 %.0f ms",
                         p50.seconds * 1000, p99.seconds * 1000))
            print(String(format: "psql \\copy of the same blobs into bytea:    %9.0f records/s  %7.1f MB/s  (%.2f s)",
                         Double(totalRecords) / floor.seconds, Double(totalBytes) / 1e6 / floor.seconds, floor.seconds))
            print(String(format: "ratio hub / storage floor:                  %.2f×", floor.seconds / elapsed.seconds))
        }
    }

    /// `psql` storing the same batch files as bytea rows, one COPY: what keeping the bytes costs at least.
    static func storageFloor(files: [[UInt8]], conninfo: String) async throws -> Duration {
        let directory = Subprocess.temporaryDirectory("govex-bench-floor")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/blobs.copy"
        FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        for file in files { handle.write(Data(("\\\\x" + Hex.encode(file) + "\n").utf8)) }
        try handle.close()
        try await Subprocess.checkAsync(["psql", conninfo, "-q", "-c", "CREATE TABLE floor (b bytea NOT NULL)"])
        let start = ContinuousClock.now
        try await Subprocess.checkAsync(["psql", conninfo, "-q", "-c", "\\copy floor (b) FROM '\(path)'"])
        return ContinuousClock.now - start
    }

    func progress(_ message: String) {
        FileHandle.standardError.write(Data("… \(message)\n".utf8))
    }
}
