import GovexAPI
import GovexWire

/// What the hub knows of a node when a batch arrives: the node's row, read under a row
/// lock in the ingest transaction, so concurrent hub replicas decide one at a time.
public struct NodeLedger: Sendable, Equatable {
    public var nodeID: String
    public var revoked: Bool
    /// The epoch whose sequences the hub accepts (0 before the first batch).
    public var epoch: UInt64
    /// The sequence the next batch of `epoch` must carry.
    public var nextSequence: UInt64
    /// A newer epoch an agent has announced; it waits for `govex hub node accept-epoch`.
    public var pendingEpoch: UInt64?

    public init(nodeID: String, revoked: Bool = false, epoch: UInt64 = 0, nextSequence: UInt64 = 1, pendingEpoch: UInt64? = nil) {
        self.nodeID = nodeID
        self.revoked = revoked
        self.epoch = epoch
        self.nextSequence = nextSequence
        self.pendingEpoch = pendingEpoch
    }
}

/// A batch already stored under (node, epoch, sequence).
public struct StoredBatchIdentity: Sendable, Equatable {
    public var digest: [UInt8]
    public var accepted: Bool
    public init(digest: [UInt8], accepted: Bool) {
        self.digest = digest
        self.accepted = accepted
    }
}

/// A resource as the catalog describes it, for the ingest checks.
public struct CatalogResourceEntry: Sendable, Equatable {
    public var code: String
    public var provider: String
    public var share: String
    /// The columns the catalog lists: a batch may carry no other, whatever the agent's configuration says.
    public var columns: Set<String>
    public init(code: String, provider: String, share: String, columns: Set<String>) {
        self.code = code
        self.provider = provider
        self.share = share
        self.columns = columns
    }
}

/// The hub's answer to one pushed batch. Pure: the ingest handler reads the ledger and
/// the stored identity, asks this, and then does exactly what the decision says.
public enum IngestDecision: Sendable, Equatable {
    /// Store as accepted, advance the ledger, return a signed receipt (200).
    case accept
    /// Store as rejected with the reason, advance the ledger, return a signed rejection
    /// receipt (200): one bad batch must not block the node's stream.
    case reject(reason: String)
    /// Already stored with the same digest: answer with the original receipt (200), store nothing.
    case replay
    /// Not stored, sequence not consumed; answered with the code's status and `message`.
    case refuse(code: HubErrorCode, message: String)
    /// A new node epoch: recorded as pending and answered 409 until an administrator accepts it.
    case newEpoch(UInt64, message: String)

    /// The decision once the content was checked: a batch due to be accepted is stored as
    /// rejected when its signature or content breaks a rule (`rejection`).
    public func afterContent(_ rejection: ContentRejection?) -> IngestDecision {
        guard self == .accept, let rejection else { return self }
        return .reject(reason: rejection.description)
    }

    public var consumesSequence: Bool {
        switch self {
        case .accept, .reject: return true
        case .replay, .refuse, .newEpoch: return false
        }
    }
}

public enum IngestRules {
    /// Decides a pushed batch from its header alone: who, which epoch, which sequence.
    /// `authenticatedNode` is the TLS client certificate's node; `stored` is what the hub holds
    /// at (node, epoch, sequence), if anything; `digest` is the SHA-256 of the whole pushed
    /// file; `epochStored` says whether the hub holds batches of the batch's epoch (asked only
    /// when it is not the accepted one). Only an `.accept` goes on to `checkContent`, and then
    /// `afterContent`.
    public static func decide(authenticatedNode: String, ledger: NodeLedger?, header: BatchHeader, digest: [UInt8],
                              stored: StoredBatchIdentity?, epochStored: Bool = false) -> IngestDecision {
        guard let ledger else {
            return .refuse(code: .unknownNode, message: "node \(authenticatedNode) is not enrolled at this hub")
        }
        guard !ledger.revoked else {
            return .refuse(code: .revoked, message: "node \(authenticatedNode) has been revoked")
        }
        guard header.nodeID == authenticatedNode else {
            return .refuse(code: .nodeMismatch,
                           message: "the batch is from node \(header.nodeID), but the client certificate is node \(authenticatedNode)")
        }
        if header.nodeEpoch != ledger.epoch && ledger.epoch != 0 {
            // An epoch is an identity, not an order: one the hub already holds batches of is an old
            // state come back (a restored backup); any other is a reset waiting for the administrator.
            if epochStored {
                return .refuse(code: .staleEpoch,
                               message: "epoch \(header.nodeEpoch) was replaced by epoch \(ledger.epoch): this agent runs on old state (restored from a backup?); "
                                   + "remove data_dir/state and the spool to start a new epoch, which an administrator then accepts")
            }
            return .newEpoch(header.nodeEpoch, message: "node \(ledger.nodeID) started a new epoch \(header.nodeEpoch) (its state or slot was reset) after epoch \(ledger.epoch); "
                               + "an administrator must check it and run: govex hub node accept-epoch \(ledger.nodeID)")
        }
        let expected = ledger.epoch == 0 ? 1 : ledger.nextSequence
        if header.sequence < expected {
            guard let stored else {
                return .refuse(code: .sequenceNotStored,
                               message: "sequence \(header.sequence) is before the expected \(expected) but the hub holds no such batch")
            }
            guard stored.digest == digest else {
                return .refuse(code: .digestConflict,
                               message: "sequence \(header.sequence) of epoch \(header.nodeEpoch) is already stored with another digest "
                                   + "(stored \(hexPrefix(stored.digest))…, pushed \(hexPrefix(digest))…); "
                                   + "the agent's spool or state was altered: nothing was stored")
            }
            return .replay
        }
        if header.sequence > expected {
            return .refuse(code: .sequenceGap,
                           message: "expected sequence \(expected) of epoch \(header.nodeEpoch), got \(header.sequence)")
        }
        return .accept
    }

    /// The first resource whose records carry a column its catalog entry does not list. A batch of
    /// one resource is checked by the names the decoder saw; several resources, record by record.
    static func unlistedColumns(_ records: [ChangeRecord], columnNames: [String], catalog: [String: CatalogResourceEntry]) -> ContentRejection? {
        if let only = records.first?.resource, records.allSatisfy({ $0.resource == only }) {
            let extra = columnNames.filter { !(catalog[only]?.columns.contains($0) ?? false) }
            return extra.isEmpty ? nil : .unlistedColumns(only, extra.sorted())
        }
        var extra: [String: Set<String>] = [:]
        for record in records {
            let listed = catalog[record.resource]?.columns ?? []
            for column in record.key + record.values + (record.oldKey ?? []) where !listed.contains(column.name) {
                extra[record.resource, default: []].insert(column.name)
            }
        }
        return extra.min { $0.key < $1.key }.map { .unlistedColumns($0.key, $0.value.sorted()) }
    }

    static func hexPrefix(_ digest: [UInt8]) -> String {
        digest.prefix(8).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// The ledger after a decision that consumed a sequence (a first batch sets the epoch).
    public static func advance(_ ledger: NodeLedger, by header: BatchHeader) -> NodeLedger {
        var next = ledger
        next.epoch = header.nodeEpoch
        next.nextSequence = header.sequence + 1
        return next
    }

    /// The ledger once an administrator accepts the pending epoch: its sequences start at 1.
    public static func acceptEpoch(_ ledger: NodeLedger) -> NodeLedger? {
        guard let pending = ledger.pendingEpoch, pending != ledger.epoch else { return nil }
        return NodeLedger(nodeID: ledger.nodeID, revoked: ledger.revoked, epoch: pending, nextSequence: 1, pendingEpoch: nil)
    }

    /// Checks a parsed batch against the node's registered key and the catalog: the
    /// signature, every resource provided by this node and not `none`, every record decodable.
    /// On success: the records, and the column names they use (kept with the stored batch, so
    /// that a delivery that would change nothing is issued without decoding it again).
    public static func checkContent(_ file: BatchFile, key: VerifyingKey?, catalog: [String: CatalogResourceEntry])
        -> Result<(records: [ChangeRecord], columnNames: [String]), ContentRejection> {
        guard let key else { return .failure(.noRegisteredKey) }
        do {
            try file.verify(with: key)
        } catch {
            return .failure(.signature(error.description))
        }
        for resource in file.header.resources {
            guard let entry = catalog[resource] else { return .failure(.unknownResource(resource)) }
            guard entry.provider == file.header.nodeID else { return .failure(.foreignResource(resource, provider: entry.provider)) }
            guard entry.share != "none" else { return .failure(.negativeList(resource)) }
        }
        do {
            let (records, columnNames) = try file.contents()
            for (index, record) in records.enumerated() where !file.header.resources.contains(record.resource) {
                return .failure(.content("record \(index) names resource \(record.resource), which the header does not list"))
            }
            if let unlisted = unlistedColumns(records, columnNames: columnNames, catalog: catalog) { return .failure(unlisted) }
            return .success((records, columnNames))
        } catch {
            return .failure(.content(error.description))
        }
    }
}

/// Why a validly framed batch from an authenticated node is stored as rejected.
public enum ContentRejection: Error, Sendable, Equatable, CustomStringConvertible {
    case noRegisteredKey
    case signature(String)
    case unknownResource(String)
    case foreignResource(String, provider: String)
    case negativeList(String)
    case unlistedColumns(String, [String])
    case content(String)

    public var description: String {
        switch self {
        case .noRegisteredKey: return "the batch's signing key is not a current key of the node (never registered, waiting for the administrator's accept-key, or retired)"
        case .signature(let reason): return "signature check failed: \(reason)"
        case .unknownResource(let code): return "resource \(code) is not in the catalog"
        case let .foreignResource(code, provider): return "resource \(code) is provided by \(provider), not by this node"
        case .negativeList(let code): return "resource \(code) has share class none: it may never be shared"
        case let .unlistedColumns(code, columns):
            return "resource \(code) carries \(columns.joined(separator: ", ")), which the catalog does not list for it: "
                + "the agent's [[publish]] must publish only the catalog's columns (nothing of this batch was stored as data)"
        case .content(let reason): return "unreadable content: \(reason)"
        }
    }
}
