import Foundation
import GovexCapture
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// `govex agent` as systemd runs it: configuration errors, readiness, capture, graceful stop.
@Suite("govex agent")
struct AgentCommandTests {
    static let govex = Subprocess.buildDirectory + "/govex"

    /// The agent's usual setup: tables `residents` (published) and `negative` (share class
    /// none) in publication `govex`, a signing key, and a configuration file.
    static func prepareAgent(_ database: TestDatabase, _ sql: PostgresConnection, directoryPrefix: String,
                             metrics: String = "", hub: String? = nil, publish: String? = nil) async throws -> (dataDir: String, slot: String, configPath: String) {
        try await sql.query("CREATE TABLE residents (id int PRIMARY KEY, name text, secret text)")
        try await sql.query("CREATE TABLE negative (id int PRIMARY KEY, name text)")
        try await sql.query("CREATE PUBLICATION govex FOR TABLE residents, negative")
        let dataDir = Subprocess.temporaryDirectory(directoryPrefix)
        try Subprocess.check([govex, "keygen", "--out", dataDir + "/keys"])
        let slot = database.name + "_slot"
        let path = try write(config(dataDir: dataDir, conninfo: database.conninfo, slot: slot, metrics: metrics, publish: publish, hub: hub))
        return (dataDir, slot, path)
    }

    static func config(dataDir: String, conninfo: String, slot: String, metrics: String = "", publish: String? = nil, hub: String? = nil) -> String {
        """
        [node]
        id = "gongan"
        data_dir = "\(dataDir)"

        [signing]
        algorithm = "ed25519"
        key = "\(dataDir)/keys/signing.key"

        [source]
        conninfo = "\(conninfo)"
        slot = "\(slot)"
        publication = "govex"
        heartbeat = "1s"

        [batch]
        max_records = 500
        max_bytes = "1MiB"
        max_age = "200ms"

        [metrics]
        listen = "\(metrics)"
        \(hub.map { "\n[hub]\nurl = \"\($0)\"\n" } ?? "")

        \(publish ?? """
        \(residentsPublish)

        [[publish]]
        resource = "GA-XX-0009"
        share = "none"
        table = "public.negative"
        key = ["id"]
        """)
        """
    }

    /// A's residents, shared without `secret`.
    static let residentsPublish = """
        [[publish]]
        resource = "GA-RK-0001"
        share = "unconditional"
        table = "public.residents"
        key = ["id"]
        exclude = ["secret"]
        """

    static func write(_ text: String) throws -> String {
        let path = Subprocess.temporaryDirectory("govex-agent-config") + "/agent.toml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        // As installed: readable by the service's group, not by every user (hub.toml refuses that).
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: path)
        return path
    }

    @Test("configuration mistakes name the file, the line, the key and what to do", arguments: [
        ("[node]\nid = \"gongan\"\n", "agent.toml:1: [node] data_dir", "missing; expected a string"),
        ("[node]\nid = \"gongan\"\ndata_dir = \"/tmp\"\n", "signing", "missing section [signing]"),
        ("[node]\nid = \"bad id!\"\ndata_dir = \"/tmp\"\n[signing]\n[source]\nconninfo = \"x\"\n", "agent.toml:2: [node] id", "must be"),
        ("[node]\nid = \"a\"\ndata_dir = \"/tmp\"\n[signing]\n[source]\nconninfo = \"x\"\n[batch]\nmax_age = \"soon\"\n", "agent.toml:8: [batch] max_age", "duration"),
        ("[node]\nid = \"a\"\ndata_dir = \"/tmp\"\n[signing]\n[source]\nconninfo = \"x\"\n[[publish]]\nresource = \"R\"\nshare = \"maybe\"\n", "agent.toml:9: [publish]#0 share", "unconditional, conditional or none"),
        ("[node]\nid = \"a\"\ndata_dir = \"/tmp\"\n[signing]\n[source]\nconninfo = \"x\"\n[[publish]]\nresource = \"R\"\nshare = \"none\"\ntable = \"t\"\nkey = [\"id\"]\nfilter = \"a == 1\"\n", "agent.toml:12: [publish]#0 filter", "at character 3: unknown operator '=='"),
        ("[node]\nid = \"a\"\ndata_dir = \"/tmp\"\n[signing]\n[source]\nconninfo = \"x\"\n[nodes]\n", "agent.toml:7: nodes", "unknown section"),
        ("[node\nid = 1\n", "agent.toml:1", "syntax"),
        ("[node]\nid = \"a\"\ndata_dir = \"/tmp\"\n[signing]\n[source]\nconninfo = \"x\"\nslot = \"Bad-Slot\"\n", "agent.toml:7: [source] slot", "a-z, 0-9"),
    ])
    func configurationErrors(text: String, location: String, problem: String) throws {
        let path = try Self.write(text)
        let result = try Subprocess.run([Self.govex, "agent", "--config", path])
        #expect(result.status == 2, "\(result.output)")
        #expect(result.output.contains(location), "\(result.output)")
        #expect(result.output.contains(problem), "\(result.output)")
    }

    @Test("readiness, capture into the spool, and a graceful stop on SIGTERM that loses nothing")
    func runsAndStops() async throws {
        // Heavy: every WAL sender on the server decodes what it writes (or it waits on them).
        try await HeavyTestGate.shared.run { try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            let metricsPort = try freeLoopbackPort()
            let (dataDir, slot, path) = try await Self.prepareAgent(database, sql, directoryPrefix: "govex-agent", metrics: "127.0.0.1:\(metricsPort)")
            try await sql.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(1, 120) g")

            let notifyPath = Subprocess.temporaryDirectory("gvx-n") + "/n"
            let notifications = try DatagramListener(path: notifyPath)
            let agent = try Subprocess.start([Self.govex, "agent", "--config", path], environment: ["NOTIFY_SOCKET": notifyPath, "WATCHDOG_USEC": "400000"])
            let ready = await notifications.arrives("READY=1", within: .seconds(30))
            #expect(ready, "no READY=1")
            try await sql.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(121, 175) g")
            try await sql.query("INSERT INTO negative VALUES (1, 'never leaves')")
            try await sql.query("UPDATE residents SET name = 'x' WHERE id = 3")
            let watchdog = await notifications.arrives("WATCHDOG=1", within: .seconds(10))
            #expect(watchdog)
            // Capture runs at its own pace beside other tests: wait for the last change to be counted.
            var metrics = try httpGet(port: metricsPort, path: "/metrics")
            let deadline = ContinuousClock.now + .seconds(30)
            while !metrics.contains("govex_capture_records_spooled_total 176"), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                metrics = try httpGet(port: metricsPort, path: "/metrics")
            }
            #expect(metrics.hasPrefix("HTTP/1.1 200 OK"), "\(metrics)")
            for name in ["govex_capture_batches_spooled_total", "govex_capture_records_spooled_total 176", "govex_spool_batches", "govex_spool_bytes",
                         "govex_capture_lag_seconds", "govex_slot_retained_wal_bytes"] {
                #expect(metrics.contains(name), "\(name) missing from\n\(metrics)")
            }
            #expect(try httpGet(port: metricsPort, path: "/").hasPrefix("HTTP/1.1 404"))
            #expect(MetricsText.typesWithoutHelp(metrics).isEmpty, "every metric says what it is: \(MetricsText.typesWithoutHelp(metrics))")
            #expect(metrics.contains("# HELP govex_spool_oldest_batch_age_seconds Age of the oldest batch"))
            agent.signal(SIGTERM)
            let result = await agent.finish()
            #expect(result.status == 0, "\(result.output)")
            let stopping = await notifications.arrives("STOPPING=1", within: .seconds(1))
            #expect(stopping)
            #expect(result.output.contains("<6>govex agent: stopped"))

            var records: [ChangeRecord] = []
            let publicKey = try VerifyingKey(pem: String(contentsOfFile: dataDir + "/keys/signing.pub", encoding: .utf8))
            for entry in try Spool.entries(in: dataDir + "/spool") {
                let batch = try BatchFile(bytes: try DurableFile.read(dataDir + "/spool/" + Spool.fileName(entry.sequence), limit: 1 << 30))
                try batch.verify(with: publicKey)
                records += try batch.records()
            }
            #expect(records.filter { $0.operation == .insert }.count == 175, "120 from the snapshot, 55 streamed")
            #expect(records.filter { $0.operation == .update }.count == 1)
            #expect(Set(records.map(\.resource)) == ["GA-RK-0001"], "share = none never leaves")
            #expect(!records.contains { $0.values.contains { $0.name == "secret" } })
            // Everything captured was confirmed before the agent exited.
            let confirmed = try await sql.query("SELECT confirmed_flush_lsn IS NOT NULL FROM pg_replication_slots WHERE slot_name = $1", [slot])
            #expect(confirmed.rows.first?[0] == "t")
            try await sql.dropSlot(slot)
            await sql.close()
        } }
    }
}

extension AgentCommandTests {
    @Test("the spool's gauges follow time, not writes: batches left from the last run show at start, the oldest one ages while nothing is written")
    func spoolGaugesRefresh() async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            let metricsPort = try freeLoopbackPort()
            let (_, slot, path) = try await Self.prepareAgent(database, sql, directoryPrefix: "govex-gauges", metrics: "127.0.0.1:\(metricsPort)")
            try await sql.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(1, 10) g")
            let first = try Subprocess.start([Self.govex, "agent", "--config", path])
            #expect(try await AgentPushTests.eventually { (try? httpGet(port: metricsPort, path: "/metrics"))?.contains("govex_capture_records_spooled_total 10") == true })
            first.signal(SIGTERM)
            #expect(await first.finish().status == 0)

            // No [hub]: the batches stay. Nothing is written in this run.
            let second = try Subprocess.start([Self.govex, "agent", "--config", path])
            func gauge(_ name: String) throws -> Double? {
                try httpGet(port: metricsPort, path: "/metrics").split(separator: "\n").first { $0.hasPrefix(name + " ") }
                    .flatMap { Double($0.split(separator: " ")[1]) }
            }
            #expect(try await AgentPushTests.eventually { (try? gauge("govex_spool_batches")).flatMap { $0 } ?? 0 > 0 },
                    "the spool's batches show without a new write")
            #expect(try await AgentPushTests.eventually { (try? gauge("govex_spool_oldest_batch_age_seconds")).flatMap { $0 } ?? 0 >= 5 },
                    "the oldest batch ages while nothing is written")
            second.signal(SIGTERM)
            #expect(await second.finish().status == 0)
            try await sql.dropSlot(slot)
            await sql.close()
        }
    }
}

@Suite("govex agent under systemd")
struct AgentWatchdogTests {
    @Test("a subscribe-only agent says READY=1 and then WATCHDOG=1 within the interval (it used to say it only from capture)")
    func subscribeOnlyWatchdog() async throws {
        let dataDir = Subprocess.temporaryDirectory("govex-sub-only")
        try Subprocess.check([AgentCommandTests.govex, "keygen", "--out", dataDir + "/keys"])
        let path = try AgentCommandTests.write("""
            [node]
            id = "minzheng"
            data_dir = "\(dataDir)"
            [signing]
            key = "\(dataDir)/keys/signing.key"
            [source]
            conninfo = "host=127.0.0.1 port=1 dbname=none"
            [metrics]
            listen = ""
            [[subscribe]]
            resource = "GA-RK-0001"
            table = "shared.residents"
            purpose = "check residence"
            """)
        let notifyPath = Subprocess.temporaryDirectory("gvx-w") + "/n"
        let notifications = try DatagramListener(path: notifyPath)
        let agent = try Subprocess.start([AgentCommandTests.govex, "agent", "--config", path], environment: ["NOTIFY_SOCKET": notifyPath, "WATCHDOG_USEC": "400000"])
        #expect(await notifications.arrives("READY=1", within: .seconds(30)))
        #expect(await notifications.arrives("WATCHDOG=1", within: .seconds(2)), "systemd would kill it after WatchdogSec")
        // Nobody reads the socket now: its queue fills, and a notification must not block the agent.
        notifications.pause()
        try await Task.sleep(for: .seconds(4))
        agent.signal(SIGTERM)
        let stopped = await agent.finish(within: .seconds(30))
        #expect(stopped.status == 0, "\(stopped.output)")
        // It captures nothing: its start line says what it does, not "slot …, 0 resources".
        #expect(stopped.output.contains("agent minzheng starting: receiving 1 subscriptions"), "\(stopped.output)")
        #expect(!stopped.output.contains("0 resources"), "\(stopped.output)")
    }
}

/// The Prometheus text a /metrics endpoint serves.
enum MetricsText {
    /// Metric families announced with `# TYPE` but no `# HELP` line before it (`text` may
    /// start with the HTTP response's headers).
    static func typesWithoutHelp(_ text: String) -> [String] {
        let lines = (text.components(separatedBy: "\r\n\r\n").last ?? text).components(separatedBy: "\n")
        return lines.indices.compactMap { index in
            guard lines[index].hasPrefix("# TYPE ") else { return nil }
            let name = lines[index].split(separator: " ")[2]
            return index > 0 && lines[index - 1].hasPrefix("# HELP \(name) ") ? nil : String(name)
        }
    }
}

/// A plain HTTP GET on loopback, for the metrics endpoint.
func httpGet(port: Int, path: String) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw TestSupportError("cannot connect to 127.0.0.1:\(port)") }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var response = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = recv(fd, &chunk, chunk.count, 0)
        if count <= 0 { break }
        response += chunk[0..<count]
    }
    return String(decoding: response, as: UTF8.self)
}
