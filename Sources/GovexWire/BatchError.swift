/// Why a batch could not be built, read or trusted. Each message names the
/// part at fault and, where someone can act, what to do.
public enum BatchError: Error, Equatable, CustomStringConvertible {
    case truncated(what: String, offset: Int)
    case badMagic
    case unsupportedVersion(UInt16)
    case invalidHeader(field: String, reason: String)
    case limitExceeded(what: String, value: UInt64, limit: UInt64)
    case trailingBytes(Int)
    case unknownCriticalExtension(UInt16)
    case digestMismatch(declared: String, actual: String)
    case wrongKey(batchKeyID: String, givenKeyID: String)
    case algorithmMismatch(batch: String, key: String)
    case badSignature
    case corruptBody(String)
    case invalidRecord(index: Int, reason: String)
    case invalidInput(String)

    /// A stable name for the kind of failure, for scripts and the test vectors' manifest.
    public var code: String {
        switch self {
        case .truncated: return "truncated"
        case .badMagic: return "bad_magic"
        case .unsupportedVersion: return "unsupported_version"
        case .invalidHeader: return "invalid_header"
        case .limitExceeded: return "limit_exceeded"
        case .trailingBytes: return "trailing_bytes"
        case .unknownCriticalExtension: return "unknown_critical_extension"
        case .digestMismatch: return "digest_mismatch"
        case .wrongKey: return "wrong_key"
        case .algorithmMismatch: return "wrong_algorithm"
        case .badSignature: return "bad_signature"
        case .corruptBody: return "corrupt_body"
        case .invalidRecord: return "invalid_record"
        case .invalidInput: return "invalid_input"
        }
    }

    public var description: String {
        switch self {
        case let .truncated(what, offset):
            return "truncated batch: the file ends at byte \(offset) inside the \(what)"
        case .badMagic:
            return "not a govex batch: the file does not start with the batch magic bytes 89 47 56 58 0D 0A 1A 0A"
        case .unsupportedVersion(let version):
            return "unsupported batch format version \(version): this govex reads version 1; upgrade govex to read it"
        case let .invalidHeader(field, reason):
            return "invalid batch header field \(field): \(reason)"
        case let .limitExceeded(what, value, limit):
            return "batch exceeds a limit: \(what) is \(value), the limit is \(limit)"
        case .trailingBytes(let count):
            return "corrupted batch: \(count) unexpected bytes follow the body"
        case .unknownCriticalExtension(let type):
            return "batch uses critical header extension \(type), which this govex does not understand; upgrade govex"
        case let .digestMismatch(declared, actual):
            return "body digest mismatch: the header declares \(declared) but the body hashes to \(actual); the body was altered or corrupted"
        case let .wrongKey(batchKeyID, givenKeyID):
            return "wrong key: the batch was signed by key \(batchKeyID), but the key given has id \(givenKeyID)"
        case let .algorithmMismatch(batch, key):
            return "wrong algorithm: the batch is signed with \(batch), but the key given is an \(key) key"
        case .badSignature:
            return "invalid signature: the header was altered after signing, or it was signed by another key with the same id"
        case .corruptBody(let reason):
            return "corrupted body: \(reason)"
        case let .invalidRecord(index, reason):
            return "invalid record \(index): \(reason)"
        case .invalidInput(let reason):
            return "cannot build batch: \(reason)"
        }
    }
}

/// Bounds a decoder enforces before it allocates anything sized by the input.
public struct BatchLimits: Sendable, Hashable {
    public var maxHeaderBytes: Int
    public var maxRecords: Int
    public var maxUncompressedBytes: Int
    public var maxResources: Int
    public var maxColumns: Int

    public init(maxHeaderBytes: Int = 1 << 20, maxRecords: Int = 1_000_000,
                maxUncompressedBytes: Int = 256 << 20, maxResources: Int = 4096, maxColumns: Int = 1600) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxRecords = maxRecords
        self.maxUncompressedBytes = maxUncompressedBytes
        self.maxResources = maxResources
        self.maxColumns = maxColumns
    }

    public static let `default` = BatchLimits()

    /// The largest compressed body an LZ4 frame of `maxUncompressedBytes` can produce.
    public var maxCompressedBytes: Int { maxUncompressedBytes + maxUncompressedBytes / 255 + 64 * 1024 }
}

/// Identifiers in headers and records: node ids and resource codes.
public enum Identifier {
    public static func isValid(_ text: String) -> Bool {
        let utf8 = text.utf8
        guard (1...64).contains(utf8.count) else { return false }
        return utf8.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
                || c == UInt8(ascii: "-") || c == UInt8(ascii: "_") || c == UInt8(ascii: ".")
        }
    }

    public static let rule = "1 to 64 characters from A-Z a-z 0-9 . _ -"
}
