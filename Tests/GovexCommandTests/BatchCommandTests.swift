import Foundation
import GovexTestSupport
import Testing

/// The `govex` executable as an operator runs it: exit statuses and messages.
@Suite("govex keygen and govex batch")
struct BatchCommandTests {
    static let govex = Subprocess.buildDirectory + "/govex"
    static let vectors = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/batches").path

    @Test("verify exits 0 for a valid batch and names the signer")
    func verifyValid() throws {
        let result = try Subprocess.run([Self.govex, "batch", "verify", Self.vectors + "/sm2-change.gvxb", "--key", Self.vectors + "/minzheng-sm2.pub"])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("valid, 10 records, signed by minzheng with sm2"))
    }

    @Test("verify exits 1 with the precise reason for each invalid batch", arguments: [
        ("invalid-truncated.gvxb", "gongan-ed25519.pub", "truncated batch"),
        ("invalid-body-digest.gvxb", "gongan-ed25519.pub", "body digest mismatch"),
        ("invalid-header-signature.gvxb", "gongan-ed25519.pub", "invalid signature"),
        ("invalid-version.gvxb", "gongan-ed25519.pub", "unsupported batch format version 2"),
        ("invalid-trailing-bytes.gvxb", "gongan-ed25519.pub", "unexpected bytes follow the body"),
        ("invalid-signed-garbage-body.gvxb", "gongan-ed25519.pub", "corrupted body"),
        ("ed25519-change.gvxb", "hub-ed25519.pub", "wrong key"),
        ("ed25519-change.gvxb", "minzheng-sm2.pub", "wrong algorithm"),
    ])
    func verifyInvalid(file: String, key: String, reason: String) throws {
        let result = try Subprocess.run([Self.govex, "batch", "verify", Self.vectors + "/" + file, "--key", Self.vectors + "/" + key])
        #expect(result.status == 1, "\(result.output)")
        #expect(result.output.contains(reason), "\(result.output)")
    }

    @Test("verify exits 2 when it cannot run at all")
    func verifyCannotRun() throws {
        let missing = try Subprocess.run([Self.govex, "batch", "verify", "/nonexistent.gvxb", "--key", Self.vectors + "/gongan-ed25519.pub"])
        #expect(missing.status == 2)
        #expect(missing.output.contains("/nonexistent.gvxb"))
        let badKey = try Subprocess.run([Self.govex, "batch", "verify", Self.vectors + "/ed25519-change.gvxb", "--key", Self.vectors + "/manifest.json"])
        #expect(badKey.status == 2)
    }

    @Test("inspect --json prints the header and at most --limit records")
    func inspectJSON() throws {
        let result = try Subprocess.run([Self.govex, "batch", "inspect", Self.vectors + "/ed25519-change.gvxb", "--json", "--limit", "3",
                                         "--key", Self.vectors + "/gongan-ed25519.pub"])
        #expect(result.status == 0, "\(result.output)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect((json["records"] as? [Any])?.count == 3)
        #expect((json["header"] as? [String: Any])?["node_id"] as? String == "gongan")
        #expect(json["verified"] as? Bool == true)
    }

    @Test("inspect without a key says the batch is not verified")
    func inspectHuman() throws {
        let result = try Subprocess.run([Self.govex, "batch", "inspect", Self.vectors + "/ed25519-change.gvxb"])
        #expect(result.status == 0)
        #expect(result.output.contains("NOT verified"))
        #expect(result.output.contains("update GA-RK-0001 key(id=40)"))
        #expect(result.output.contains("old key(id=4)"))
    }

    @Test("keygen writes both keys, refuses to overwrite, and rejects an unknown algorithm")
    func keygen() throws {
        let directory = Subprocess.temporaryDirectory() + "/keys"
        let first = try Subprocess.run([Self.govex, "keygen", "--algorithm", "sm2", "--out", directory, "--json"])
        #expect(first.status == 0, "\(first.output)")
        #expect(first.output.contains("\"algorithm\":\"sm2\""))
        let mode = try FileManager.default.attributesOfItem(atPath: directory + "/signing.key")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let second = try Subprocess.run([Self.govex, "keygen", "--out", directory])
        #expect(second.status == 2)
        #expect(second.output.contains("never overwrites"))
        let unknown = try Subprocess.run([Self.govex, "keygen", "--algorithm", "rsa", "--out", directory + "2"])
        #expect(unknown.status == 2)
        #expect(unknown.output.contains("use ed25519 or sm2"))
    }
}
