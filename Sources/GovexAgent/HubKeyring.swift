import Foundation
import GovexAPI
import GovexKeyStore
import GovexWire
import Synchronization

/// The hub signing keys this agent trusts: the one received at enrollment, and every key
/// the hub introduced since by rotation, each endorsed by a key already trusted. Receipts
/// and deliveries name their key id; an unknown one makes the agent ask the hub for its
/// endorsements (`GET /v1/hub/keys`) once, and keep what verifies.
public final class HubKeyring: Sendable {
    let files: AgentEnrollment.Files
    let keys: Mutex<[VerifyingKey]>

    public init(files: AgentEnrollment.Files) throws {
        self.files = files
        var loaded = [try KeyStore.loadVerifyingKey(path: files.hubSigningKey)]
        let directory = files.directory
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        where name.hasPrefix("hub-signing.") && name.hasSuffix(".pub") && name != "hub-signing.pub" {
            if let key = try? KeyStore.loadVerifyingKey(path: directory + "/" + name) { loaded.append(key) }
        }
        keys = Mutex(loaded)
    }

    public func key(id: [UInt8]) -> VerifyingKey? { keys.withLock { $0.first { $0.keyID == id } } }

    public var all: [VerifyingKey] { keys.withLock { $0 } }

    /// Learns the hub's rotated keys; returns how many were new.
    @discardableResult
    public func refresh(from client: HubClient) async throws -> Int {
        let response = try await client.get(HubRoute.hubKeys)
        guard response.status == 200, let endorsements = try? JSONDecoder().decode([HubKeyEndorsement].self, from: Data(response.body)) else {
            throw DeliveryError("cannot fetch the hub's keys: HTTP \(response.status)")
        }
        let before = all
        let extended = HubKeyEndorsement.extend(before, with: endorsements)
        for key in extended.dropFirst(before.count) {
            try? KeyStore.writePublic(path: files.directory + "/hub-signing." + Hex.encode(key.keyID) + ".pub", contents: key.pem)
        }
        keys.withLock { $0 = extended }
        return extended.count - before.count
    }

    /// The key for `id`, asking the hub once when it is not known yet.
    public func resolve(_ id: [UInt8], client: HubClient) async -> VerifyingKey? {
        if let known = key(id: id) { return known }
        _ = try? await refresh(from: client)
        return key(id: id)
    }
}
