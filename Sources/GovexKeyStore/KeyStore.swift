#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GovexWire

public enum KeyStoreError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case tooOpen(path: String, mode: UInt32)
    case configurationTooOpen(path: String, mode: UInt32)
    case invalidKey(path: String, reason: String)
    case exists(path: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            return "cannot read key file \(path): \(reason)"
        case let .tooOpen(path, mode):
            return "refusing key file \(path): its mode is \(String(mode, radix: 8, uppercase: false).leftPadded(to: 4)), so group or others can read it; run `chmod 600 \(path)` (and make sure it was not copied elsewhere meanwhile)"
        case let .configurationTooOpen(path, mode):
            return "refusing \(path): its mode is \(String(mode, radix: 8, uppercase: false).leftPadded(to: 4)), so every user of this machine can read it, "
                + "and it may hold the database password; run `chmod 640 \(path)` (owner root, group of the service user)"
        case let .invalidKey(path, reason):
            return "key file \(path) is not a usable key: \(reason)"
        case .exists(let path):
            return "\(path) already exists; govex never overwrites a key: move it away first, or choose another --out directory"
        case let .writeFailed(path, reason):
            return "cannot write \(path): \(reason)"
        }
    }
}

/// Key files on disk: PKCS#8 PEM private keys that only their owner may read,
/// and SubjectPublicKeyInfo PEM public keys.
public enum KeyStore {
    public static let privateKeyFileName = "signing.key"
    public static let publicKeyFileName = "signing.pub"

    public struct GeneratedKey: Sendable {
        public let privateKeyPath: String
        public let publicKeyPath: String
        public let publicKey: VerifyingKey
    }

    /// Creates `DIR/signing.key` (0600) and `DIR/signing.pub` (0644); refuses to overwrite either.
    public static func generate(_ algorithm: SignatureAlgorithm, directory: String) throws -> GeneratedKey {
        try makeDirectory(directory)
        let key = try SigningKey.generate(algorithm)
        let privatePath = directory + "/" + privateKeyFileName
        let publicPath = directory + "/" + publicKeyFileName
        for path in [privatePath, publicPath] where access(path, F_OK) == 0 { throw KeyStoreError.exists(path: path) }
        try writeNew(path: privatePath, contents: try key.pkcs8PEM(), mode: 0o600)
        try writeNew(path: publicPath, contents: key.publicKey.pem, mode: 0o644)
        syncDirectory(directory)
        return GeneratedKey(privateKeyPath: privatePath, publicKeyPath: publicPath, publicKey: key.publicKey)
    }

    /// Loads a private key, refusing one that group or others can read.
    public static func loadSigningKey(path: String) throws(KeyStoreError) -> SigningKey {
        let text = try readSecret(path: path)
        do {
            return try SigningKey(pem: text)
        } catch {
            throw .invalidKey(path: path, reason: error.description)
        }
    }

    /// Writes a new secret file (a TLS or CA private key): mode 0600, never over an existing file.
    public static func writeSecret(path: String, contents: String) throws(KeyStoreError) {
        try makeDirectory(parentDirectory(of: path))
        try writeNew(path: path, contents: contents, mode: 0o600)
        syncDirectory(parentDirectory(of: path))
    }

    /// Replaces a key or certificate file: writes `path.next`, renames it over `path` and
    /// syncs the directory, so a crash leaves the old file or the new one, never half of either.
    public static func replace(_ path: String, with contents: String, secret: Bool) throws(KeyStoreError) {
        let next = path + ".next"
        unlink(next)
        try makeDirectory(parentDirectory(of: path))
        try writeNew(path: next, contents: contents, mode: secret ? 0o600 : 0o644)
        guard rename(next, path) == 0 else { throw .writeFailed(path: path, reason: "rename: " + String(cString: strerror(errno))) }
        syncDirectory(parentDirectory(of: path))
    }

    /// Writes a new public file (a certificate): mode 0644, never over an existing file.
    public static func writePublic(path: String, contents: String) throws(KeyStoreError) {
        try makeDirectory(parentDirectory(of: path))
        try writeNew(path: path, contents: contents, mode: 0o644)
        syncDirectory(parentDirectory(of: path))
    }

    /// Reads a secret file, refusing one that group or others can read.
    public static func readSecret(path: String) throws(KeyStoreError) -> String {
        try readRestricted(path, refusing: 0o077) { .tooOpen(path: path, mode: $0) }
    }

    /// Reads a file unless its mode has any of the `refusing` bits.
    static func readRestricted(_ path: String, refusing bits: UInt32, _ tooOpen: (UInt32) -> KeyStoreError) throws(KeyStoreError) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .unreadable(path: path, reason: errnoDescription()) }
        let mode = UInt32(info.st_mode) & 0o7777
        guard mode & bits == 0 else { throw tooOpen(mode) }
        return try readText(path)
    }

    /// Reads a configuration file that may hold credentials: its group (the service's) may read
    /// it, others may not.
    public static func readConfiguration(path: String) throws(KeyStoreError) -> String {
        try readRestricted(path, refusing: 0o007) { .configurationTooOpen(path: path, mode: $0) }
    }

    public static func readPublic(path: String) throws(KeyStoreError) -> String {
        try readText(path)
    }

    public static func loadVerifyingKey(path: String) throws(KeyStoreError) -> VerifyingKey {
        let text = try readText(path)
        do {
            return try VerifyingKey(pem: text)
        } catch {
            throw .invalidKey(path: path, reason: error.description)
        }
    }

    static func readText(_ path: String) throws(KeyStoreError) -> String {
        guard let file = fopen(path, "rb") else { throw .unreadable(path: path, reason: errnoDescription()) }
        defer { fclose(file) }
        var bytes = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            // A PEM key is a few hundred bytes; anything this large is not one.
            guard bytes.count <= 64 * 1024 else { throw .invalidKey(path: path, reason: "larger than 64 KiB") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func makeDirectory(_ path: String) throws(KeyStoreError) {
        var components: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            components.append(part)
            let prefix = (path.hasPrefix("/") ? "/" : "") + components.joined(separator: "/")
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST { throw .writeFailed(path: prefix, reason: errnoDescription()) }
        }
    }

    static func writeNew(path: String, contents: String, mode: mode_t) throws(KeyStoreError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            if errno == EEXIST { throw .exists(path: path) }
            throw .writeFailed(path: path, reason: errnoDescription())
        }
        defer { close(fd) }
        // The umask may have narrowed the mode; the public key must stay readable.
        fchmod(fd, mode)
        let bytes = Array(contents.utf8)
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            if result < 0 {
                if errno == EINTR { continue }
                throw .writeFailed(path: path, reason: errnoDescription())
            }
            written += result
        }
        guard fsync(fd) == 0 else { throw .writeFailed(path: path, reason: errnoDescription()) }
    }

    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    static func errnoDescription() -> String { String(cString: strerror(errno)) }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
