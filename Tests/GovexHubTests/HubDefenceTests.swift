import Crypto
import Foundation
import GovexAPI
import GovexHub
import GovexIdentity
import GovexPostgres
import GovexTestSupport
import GovexWire
import SwiftASN1
import Testing
import X509

/// The hub as the last line of defence, tried as an attacker would (issue [1/5]): reserved
/// node ids, a TLS key alone forging signing keys, rotated-out and revoked certificates, a
/// leaf under an intermediate, and every refusal on the audit trail exactly once.
@Suite("Hub defences")
struct HubDefenceTests {
    static func refusals(_ hub: HubServerTests.Hub, reason: String) async throws -> Int {
        try await PostgresConnection.with(hub.conninfo) { sql in
            Int(try await sql.query("""
                SELECT count(*) FROM govex.audit_log WHERE action = 'request_refused' AND details::jsonb ->> 'reason' = $1
                """, [reason]).rows[0][0] ?? "") ?? -1
        }
    }

    /// The refusal is recorded after the answer is built: wait for the one entry, then check it stays one.
    static func expectOneRefusal(_ hub: HubServerTests.Hub, _ reason: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await expectRefusals(hub, reason, count: 1, sourceLocation: sourceLocation)
    }

    static func expectRefusals(_ hub: HubServerTests.Hub, _ reason: String, count: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        _ = try await eventually { try await refusals(hub, reason: reason) >= count }
        #expect(try await refusals(hub, reason: reason) == count, "refusals recorded for \(reason)", sourceLocation: sourceLocation)
    }

    @Test("a batch ahead of its predecessor is answered from its header: verified and decoded once, when its turn comes")
    func gapDecodedOnce() async throws {
        try await HubStoreTests.withHub { _, sql in
            let store = HubStore(hubKey: VectorKeys.hub)
            let second = try HubStoreTests.batch(2), first = try HubStoreTests.batch(1)
            for _ in 0..<5 {
                #expect(try await store.ingest(second, from: "gongan", on: sql).decision == "sequence_gap")
            }
            #expect(store.contentChecks.value == 0, "an early batch must not be verified or decompressed again and again")
            #expect(try await store.ingest(first, from: "gongan", on: sql).decision == "accepted")
            #expect(try await store.ingest(second, from: "gongan", on: sql).decision == "accepted")
            #expect(try await store.ingest(second, from: "gongan", on: sql).decision == "replay")
            #expect(store.contentChecks.value == 2)
        }
    }

    @Test("TLS 1.2 offers AEAD suites only: a client asking for CBC with SHA-1 is refused; RSA requests get no certificate")
    func cipherSuites() async throws {
        try await HubServerTests.withHub { hub in
            func handshake(_ cipher: String) async throws -> Bool {
                let result = try await Subprocess.run(["bash", "-c", """
                    openssl s_client -connect 127.0.0.1:\(hub.port) -tls1_2 -cipher \(cipher) -CAfile \(hub.directory)/ca.pem </dev/null 2>&1
                    """], within: .seconds(30))
                return result.output.contains("Cipher is \(cipher)")
            }
            #expect(try await !handshake("ECDHE-ECDSA-AES128-SHA"), "CBC with a SHA-1 MAC must not be negotiated")
            #expect(try await !handshake("ECDHE-ECDSA-AES256-SHA384"), "CBC must not be negotiated")
            #expect(try await handshake("ECDHE-ECDSA-AES128-GCM-SHA256"))
            #expect(try await handshake("ECDHE-ECDSA-CHACHA20-POLY1305"))

            let directory = Subprocess.temporaryDirectory("govex-rsa")
            _ = try await Subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/O=govex/CN=gongan",
                                          "-keyout", directory + "/k", "-out", directory + "/csr"], within: .seconds(30))
            let request = try NodeIdentity.parseRequest(pem: try String(contentsOfFile: directory + "/csr", encoding: .utf8))
            #expect { _ = try hub.ca.issueClientCertificate(for: request, nodeID: "gongan") } throws: { "\($0)".contains("must be ECDSA P-256") }
        }
    }

    @Test("enrollment attempts are limited per address; uploads take a slot before their body is read (429 beyond)")
    func rateAndUploadLimits() async throws {
        var limits = HubConfiguration.Limits()
        limits.uploadsPerNode = 1
        try await HubServerTests.withHub(limits: limits) { hub in
            var statuses: [Int] = []
            for _ in 0..<11 {
                statuses.append(try await HubServerTests.curl(hub, "/v1/enroll", body: Array(#"{"node":"x","token":"gvx_guess"}"#.utf8)).status)
            }
            #expect(statuses.prefix(10).allSatisfy { $0 == 400 } && statuses.last == 429, "\(statuses)")
            try await Self.expectOneRefusal(hub, "enrollment_rate_limited")

            // One slow upload holds gongan's only slot; a second one meanwhile is turned away, not buffered.
            let gongan = try await HubServerTests.identity(hub, node: "gongan")
            let large = hub.directory + "/large"
            try Data(repeating: 0x41, count: 4 << 20).write(to: URL(fileURLWithPath: large))
            let slow = try Subprocess.start(["curl", "-sS", "--max-time", "60", "-o", "/dev/null", "-w", "%{http_code}", "--limit-rate", "400K",
                                             "--cacert", hub.directory + "/ca.pem", "--cert", gongan.certificate, "--key", gongan.key,
                                             "-H", "Content-Type: application/octet-stream", "--data-binary", "@" + large, hub.url + "/v1/batches"])
            try await Task.sleep(for: .seconds(2))
            let busy = try await HubServerTests.curl(hub, "/v1/batches", body: try HubStoreTests.batch(1), identity: gongan)
            #expect(busy.status == 429 && busy.body.contains("too_many_uploads"), "\(busy)")
            let finished = await slow.finish(within: .seconds(60))
            #expect(finished.output.hasSuffix("400"), "the slow upload was read to its end and refused as unreadable: \(finished.output)")
            let after = try await HubServerTests.curl(hub, "/v1/batches", body: try HubStoreTests.batch(1), identity: gongan)
            #expect(after.status == 200, "the slot is free again: \(after)")
        }
    }

    @Test("node ids the hub acts under (hub, hub-admin) cannot be enrolled", arguments: ["hub", "hub-admin", "anonymous", "hub-backup"])
    func reservedNodeIDs(node: String) async throws {
        try await HubStoreTests.withHub { _, sql in
            await #expect { _ = try await Enrollment.createToken(for: node, on: sql) } throws: { error in
                "\(error)".contains("is reserved for the hub itself")
            }
            let added = try await HubStoreTests.count(sql, "SELECT count(*) FROM govex.nodes WHERE node_id = '\(node)'")
            #expect(added == 0)
        }
    }

    @Test("a certificate replaced by rotation is refused; so is one the hub never recorded and one revoked by serial")
    func certificates() async throws {
        try await HubServerTests.withHub { hub in
            let old = try await HubServerTests.identity(hub, node: "gongan")
            #expect(try await HubServerTests.curlStatus(hub, "/v1/catalog/mine", identity: old) == 200)
            let current = try await HubServerTests.identity(hub, node: "gongan")
            #expect(try await HubServerTests.curlStatus(hub, "/v1/catalog/mine", identity: current) == 200)
            let retired = try await HubServerTests.curl(hub, "/v1/certificates", body: Array(#"{"csr":"x"}"#.utf8), identity: old)
            #expect(retired.status == 403 && retired.body.contains("certificate_retired"), "a rotated-out certificate must not mint new ones: \(retired)")
            try await Self.expectOneRefusal(hub, "certificate_retired")

            let unrecorded = try await HubServerTests.identity(hub, node: "gongan", recorded: false)
            let unknown = try await HubServerTests.curl(hub, "/v1/batches", body: try HubStoreTests.batch(1), identity: unrecorded)
            #expect(unknown.status == 403 && unknown.body.contains("certificate_unknown"), "\(unknown)")

            let serial = try Certificate(pemEncoded: try String(contentsOfFile: current.certificate, encoding: .utf8)).serialNumber.description
            let node = try await PostgresConnection.with(hub.conninfo) { try await NodeCertificates.revoke(serial: serial, on: $0) }
            #expect(node == "gongan")
            let revoked = try await HubServerTests.curl(hub, "/v1/batches", body: try HubStoreTests.batch(1), identity: current)
            #expect(revoked.status == 403 && revoked.body.contains("certificate_revoked"), "\(revoked)")
            try await Self.expectOneRefusal(hub, "certificate_revoked")
        }
    }

    @Test("a leaf under an intermediate signed by the hub's CA is refused (pathlen 0 enforced by the hub itself)")
    func intermediate() async throws {
        try await HubServerTests.withHub { hub in
            let caDirectory = Subprocess.temporaryDirectory("govex-ca")
            try hub.ca.write(to: caDirectory + "/ca")
            let caKey = try P256.Signing.PrivateKey(pemRepresentation: try String(contentsOfFile: caDirectory + "/ca/ca.key", encoding: .utf8))
            let intermediateKey = P256.Signing.PrivateKey()
            let intermediateName = try DistinguishedName { CommonName("rogue intermediate") }
            let intermediate = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(intermediateKey.publicKey), notValidBefore: Date() - 300, notValidAfter: Date() + 86_400,
                issuer: hub.ca.certificate.subject, subject: intermediateName, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                    Critical(KeyUsage(keyCertSign: true))
                }, issuerPrivateKey: .init(caKey))
            let leafKey = P256.Signing.PrivateKey()
            let leaf = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(leafKey.publicKey), notValidBefore: Date() - 300, notValidAfter: Date() + 86_400,
                issuer: intermediateName, subject: try DistinguishedName { OrganizationName("govex"); CommonName("gongan") }, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    try ExtendedKeyUsage([.clientAuth])
                }, issuerPrivateKey: .init(intermediateKey))
            // Even were its serial recorded for the node, a chain through an intermediate is not the hub's own issue.
            try await PostgresConnection.with(hub.conninfo) { try await NodeCertificates.recordCurrent(leaf, node: "gongan", on: $0) }
            let base = caDirectory + "/leaf"
            try (try leaf.serializeAsPEM().pemString + "\n" + intermediate.serializeAsPEM().pemString).write(toFile: base + ".pem", atomically: true, encoding: .utf8)
            try leafKey.pemRepresentation.write(toFile: base + ".key", atomically: true, encoding: .utf8)
            let pushed = try await HubServerTests.curl(hub, "/v1/batches", body: try HubStoreTests.batch(1), identity: (base + ".pem", base + ".key"))
            #expect(pushed.status != 200, "a leaf under an intermediate must not be taken for node gongan: \(pushed)")
            if pushed.status != 0 { #expect(pushed.body.contains("certificate_chain"), "\(pushed)") }
            let stored = try await PostgresConnection.with(hub.conninfo) { try await HubStoreTests.count($0, "SELECT count(*) FROM govex.batch_index") }
            #expect(stored == 0)
        }
    }

    static let minzhengKey = VectorKeys.ed25519(seed: Array(repeating: 9, count: 32))

    @Test("a signing key registered with the TLS key alone signs nothing the hub accepts; an endorsed one does; a retired one no longer")
    func signingKeys() async throws {
        try await HubServerTests.withHub { hub in
            let gongan = try await HubServerTests.identity(hub, node: "gongan")
            let forged = try SigningKey.generate(.ed25519)
            func register(_ request: KeyRegistrationRequest) async throws -> (status: Int, body: String, output: String) {
                try await HubServerTests.curl(hub, "/v1/keys", body: Array(try JSONEncoder().encode(request)), identity: gongan)
            }
            // The attacker holds gongan's TLS key but not its signing key.
            let unendorsed = try await register(try KeyRegistrationRequest.make(node: "gongan", fresh: forged, current: nil))
            #expect(unendorsed.status == 202 && unendorsed.body.contains("pending_administrator"), "\(unendorsed)")
            let selfEndorsed = try await register(try KeyRegistrationRequest.make(node: "gongan", fresh: forged, current: forged))
            #expect(selfEndorsed.status == 202, "a key cannot vouch for itself: \(selfEndorsed)")
            var noProof = try KeyRegistrationRequest.make(node: "gongan", fresh: forged, current: VectorKeys.gongan)
            noProof.proof = try NodeKeyProof.sign(Array("x".utf8), with: forged)
            #expect(try await register(noProof).status == 403)
            // Someone else's public key (minzheng's) cannot be claimed either: no proof of possession.
            try await PostgresConnection.with(hub.conninfo) { sql in
                try await HubStore.addNode("minzheng", on: sql)
                try await HubStore.registerKey(Self.minzhengKey.publicKey, for: "minzheng", on: sql)
            }
            var stolen = try KeyRegistrationRequest.make(node: "gongan", fresh: forged, current: VectorKeys.gongan)
            stolen.signingKey = Self.minzhengKey.publicKey.pem
            #expect(try await register(stolen).status == 403)

            var metadata = SampleBatches.metadata(sequence: 1)
            metadata.nodeEpoch = 7
            let forgedBatch = try SampleBatches.seal(SampleBatches.mixedRecords(), key: forged, metadata: metadata)
            let pushed = try await HubServerTests.curl(hub, "/v1/batches", body: forgedBatch, identity: gongan)
            let receipt = try SignedReceipt(wire: Array(pushed.body.utf8)).verified(with: VectorKeys.hub.publicKey)
            #expect(receipt.status == .rejected && (receipt.reason ?? "").contains("not a current key"), "\(receipt)")

            // Rotation: the current key endorses the new one; then retiring the old one stops it.
            let fresh = try SigningKey.generate(.ed25519)
            let endorsed = try await register(try KeyRegistrationRequest.make(node: "gongan", fresh: fresh, current: VectorKeys.gongan))
            #expect(endorsed.status == 200 && endorsed.body.contains(#""status":"registered""#), "\(endorsed)")
            metadata.sequence = 2
            let signed = try SampleBatches.seal(SampleBatches.mixedRecords(), key: fresh, metadata: metadata)
            let accepted = try SignedReceipt(wire: Array(try await HubServerTests.curl(hub, "/v1/batches", body: signed, identity: gongan).body.utf8))
                .verified(with: VectorKeys.hub.publicKey)
            #expect(accepted.status == .accepted, "\(accepted)")
            try await PostgresConnection.with(hub.conninfo) { sql in
                try await NodeKeys.retire(node: "gongan", keyID: Hex.encode(VectorKeys.gongan.publicKey.keyID), on: sql)
                // The administrator may accept the waiting key (after checking with the department).
                try await NodeKeys.accept(node: "gongan", keyID: Hex.encode(forged.publicKey.keyID), on: sql)
                #expect(try await NodeKeys.list(node: "gongan", on: sql).map(\.state).sorted() == ["current", "current", "retired"])
            }
            metadata.sequence = 3
            let old = try SampleBatches.seal(SampleBatches.mixedRecords(), key: VectorKeys.gongan, metadata: metadata)
            let refused = try SignedReceipt(wire: Array(try await HubServerTests.curl(hub, "/v1/batches", body: old, identity: gongan).body.utf8))
                .verified(with: VectorKeys.hub.publicKey)
            #expect(refused.status == .rejected, "a batch signed by a retired key: \(refused)")
            try await Self.expectRefusals(hub, "signing_key_not_endorsed", count: 2)
            try await Self.expectRefusals(hub, "no_proof_of_possession", count: 2)
        }
    }

    @Test("a revoked node is reinstated only by a new enrollment, which retires its old certificates and keys")
    func reinstatement() async throws {
        try await HubServerTests.withHub { hub in
            let old = try await HubServerTests.identity(hub, node: "gongan")
            let token = try await PostgresConnection.with(hub.conninfo) { sql in
                #expect(try await HubStore.revoke("gongan", on: sql))
                return try await Enrollment.createToken(for: "gongan", on: sql)
            }
            #expect(try await HubServerTests.curlStatus(hub, "/v1/catalog/mine", identity: old) == 403)
            let (key, request) = try NodeIdentity.makeRequest(nodeID: "gongan")
            let signing = try SigningKey.generate(.ed25519)
            let granted = try await PostgresConnection.with(hub.conninfo) { sql in
                try await Enrollment.enroll(nodeID: "gongan", token: token, requestPEM: try request.serializeAsPEM().pemString, signingKeyPEM: signing.publicKey.pem,
                                            signingKeyProof: try NodeKeyProof.sign(NodeKeyProof.enrollmentStatement(node: "gongan", token: token, keyPEM: signing.publicKey.pem), with: signing),
                                            ca: hub.ca, hubSigningKey: VectorKeys.hub.publicKey, on: sql)
            }
            let base = hub.directory + "/reinstated"
            try granted.certificatePEM.write(toFile: base + ".pem", atomically: true, encoding: .utf8)
            try key.pemRepresentation.write(toFile: base + ".key", atomically: true, encoding: .utf8)
            #expect(try await HubServerTests.curlStatus(hub, "/v1/catalog/mine", identity: (base + ".pem", base + ".key")) == 200)
            #expect(try await HubServerTests.curlStatus(hub, "/v1/catalog/mine", identity: old) == 403)
            try await PostgresConnection.with(hub.conninfo) { sql in
                let keys = try await NodeKeys.list(node: "gongan", on: sql)
                #expect(keys.first { $0.keyID == Hex.encode(VectorKeys.gongan.publicKey.keyID) }?.state == "retired")
                #expect(keys.first { $0.keyID == Hex.encode(signing.publicKey.keyID) }?.state == "current")
            }
        }
    }

    @Test("every kind of refusal is on the audit trail exactly once, and the chain still verifies")
    func refusalsAudited() async throws {
        try await HubServerTests.withHub { hub in
            let gongan = try await HubServerTests.identity(hub, node: "gongan")
            _ = try await HubServerTests.curl(hub, "/v1/batches", body: try HubStoreTests.batch(1))
            try await Self.expectOneRefusal(hub, "client_certificate_required")
            let enrollment = try await HubServerTests.curl(hub, "/v1/enroll", body: Array(#"{"node":"gongan","token":"gvx_guess","csr":"x","signing_key":"y"}"#.utf8))
            #expect(enrollment.status == 400 || enrollment.status == 403)
            try await Self.expectOneRefusal(hub, enrollment.status == 400 ? "invalid_request" : "enrollment_refused")
            try await PostgresConnection.with(hub.conninfo) { try await HubStore.addNode("minzheng", on: $0) }
            let minzheng = try await HubServerTests.identity(hub, node: "minzheng")
            _ = try await HubServerTests.curl(hub, "/v1/batches", body: try HubStoreTests.batch(1), identity: minzheng)
            try await Self.expectOneRefusal(hub, "node_mismatch")
            _ = try await HubServerTests.curl(hub, "/v1/batches", body: try HubStoreTests.batch(5), identity: gongan)
            try await Self.expectOneRefusal(hub, "sequence_gap")
            _ = try await HubServerTests.curl(hub, "/v1/subscriptions", body: Array(#"{"resource":"NOPE","purpose":"p"}"#.utf8), identity: minzheng)
            let subscriptionRefusals = { try await PostgresConnection.with(hub.conninfo) { sql in
                try await HubStoreTests.count(sql, "SELECT count(*) FROM govex.audit_log WHERE action = 'request_refused' AND details LIKE '%/v1/subscriptions%'")
            } }
            _ = try await eventually { try await subscriptionRefusals() >= 1 }
            #expect(try await subscriptionRefusals() == 1)
            let problem = try await PostgresConnection.with(hub.conninfo) { sql in try await AuditTrailTests.verify(on: sql) }
            #expect(problem == nil)
        }
    }
}
