import Foundation
import GovexPostgres

/// A PostgreSQL server for tests: the one `.ci/run` started (named by
/// `GOVEX_TEST_PG`, a conninfo for a superuser), or else a throwaway cluster this
/// process creates once (initdb as an unprivileged user, a free loopback port,
/// a short socket directory, `wal_level=logical`) and stops at exit.
/// It never touches port 5432 and never asks for a password.
public enum TestPostgres {
    /// Runs `body` with a fresh, empty database of its own and drops the database
    /// afterwards, whether `body` returns or throws. The drop is awaited: a drop left to
    /// an unstructured task could still be connecting when the test process exits,
    /// and libpq's Kerberos probe then aborts on mutexes already destroyed by `exit`.
    public static func withDatabase<T>(_ body: (TestDatabase) async throws -> T) async throws -> T {
        let database = try await createDatabase()
        do {
            let result = try await body(database)
            await database.drop()
            return result
        } catch {
            await database.drop()
            throw error
        }
    }

    /// A fresh, empty database on the test server.
    static func createDatabase() async throws -> TestDatabase {
        let server = try await Server.shared.conninfo()
        let admin = try await PostgresConnection.connect(server + " dbname=postgres")
        if await Server.shared.firstDatabase() {
            // Replication origins belong to the cluster: the applies' ones
            // (govex_apply_<database oid>_<subscription>) outlive the test databases dropped by
            // earlier runs and would use up the server's replication state slots. Dropped here,
            // once, and only those of databases that are gone (a drop waits while one is in use).
            _ = try? await admin.query("""
                SELECT pg_catalog.pg_replication_origin_drop(roname) FROM pg_catalog.pg_replication_origin
                WHERE roname ~ '^govex_apply_[0-9]+_[0-9]+$' AND split_part(roname, '_', 3)::oid NOT IN (SELECT oid FROM pg_catalog.pg_database)
                """)
        }
        let name = "govex_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        try await admin.query("CREATE DATABASE \(name)")
        await admin.close()
        return TestDatabase(name: String(name), serverConninfo: server)
    }

    actor Server {
        static let shared = Server()
        private var started: String?
        private var created = false

        func firstDatabase() -> Bool {
            defer { created = true }
            return !created
        }

        func conninfo() throws -> String {
            if let started { return started }
            if let external = ProcessInfo.processInfo.environment["GOVEX_TEST_PG"], !external.isEmpty {
                started = external
                return external
            }
            let conninfo = try ThrowawayCluster.start()
            started = conninfo
            return conninfo
        }
    }
}

public struct TestDatabase: Sendable {
    public let name: String
    let serverConninfo: String

    public var conninfo: String { serverConninfo + " dbname=\(name)" }

    public func connect() async throws -> PostgresConnection {
        try await PostgresConnection.connect(conninfo)
    }

    public func drop() async {
        guard let admin = try? await PostgresConnection.connect(serverConninfo + " dbname=postgres") else { return }
        _ = try? await admin.query("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        await admin.close()
    }
}

/// Where the throwaway cluster lives, for the exit handler (a C function pointer cannot capture).
nonisolated(unsafe) private var clusterToStop: (pgCtl: String, dataDirectory: String, runAs: String?)? = nil

/// A loopback TCP port nobody listens on right now.
public func freeLoopbackPort() throws -> Int {
    try ThrowawayCluster.freeLoopbackPort()
}

enum ThrowawayCluster {
    static func start() throws -> String {
        let binaries = try findBinaries()
        let isRoot = getuid() == 0
        // initdb refuses to run as root; the Debian package's `postgres` user owns the cluster instead.
        let runAs: String? = isRoot ? "postgres" : nil
        let base = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("govex-pg-\(getpid())-\(Int.random(in: 1000...9999))").path
        let dataDirectory = base + "/data"
        // Unix socket paths must stay under 107 bytes: keep the socket directory short.
        let socketDirectory = "/tmp/gvx\(getpid())\(Int.random(in: 100...999))"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: socketDirectory, withIntermediateDirectories: true)
        if let runAs {
            try run("/bin/chown", ["-R", runAs, base, socketDirectory])
        }
        try run(binaries.initdb, ["-D", dataDirectory, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"], as: runAs)
        let port = try freeLoopbackPort()
        let options = "-c listen_addresses=127.0.0.1 -p \(port) -k \(socketDirectory) -c wal_level=logical -c max_wal_senders=64 -c max_replication_slots=64 -c fsync=off -c max_connections=300"
        try run(binaries.pgCtl, ["-D", dataDirectory, "-o", options, "-l", base + "/server.log", "-w", "start"], as: runAs)
        clusterToStop = (binaries.pgCtl, dataDirectory, runAs)
        atexit {
            guard let cluster = clusterToStop else { return }
            try? ThrowawayCluster.run(cluster.pgCtl, ["-D", cluster.dataDirectory, "-m", "immediate", "stop"], as: cluster.runAs)
            try? FileManager.default.removeItem(atPath: (cluster.dataDirectory as NSString).deletingLastPathComponent)
        }
        return "host=127.0.0.1 port=\(port) user=postgres"
    }

    static func findBinaries() throws -> (initdb: String, pgCtl: String) {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }
        for version in versions {
            let bin = "\(root)/\(version)/bin"
            if FileManager.default.isExecutableFile(atPath: bin + "/initdb") { return (bin + "/initdb", bin + "/pg_ctl") }
        }
        throw TestSupportError("no PostgreSQL server binaries under \(root): install the postgresql package (Deploy/setup.sh does), or set GOVEX_TEST_PG to a superuser conninfo")
    }

    public static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw TestSupportError("bind() to a free loopback port failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func run(_ executable: String, _ arguments: [String], as user: String? = nil) throws {
        try Subprocess.check(user.map { ["/usr/sbin/runuser", "-u", $0, "--", executable] + arguments } ?? [executable] + arguments)
    }
}

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
