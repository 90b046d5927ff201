import COpenSSL
import Crypto

public enum DigestAlgorithm: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case sha256 = 1
    case sm3 = 2

    public var description: String {
        switch self {
        case .sha256: return "sha256"
        case .sm3: return "sm3"
        }
    }

    public static let outputLength = 32

    public func hash(_ data: UnsafeRawBufferPointer) -> [UInt8] {
        switch self {
        case .sha256:
            return Array(SHA256.hash(data: data))
        case .sm3:
            var output = [UInt8](repeating: 0, count: 32)
            var length: UInt32 = 0
            let ok = output.withUnsafeMutableBufferPointer { out in
                EVP_Digest(data.baseAddress, data.count, out.baseAddress, &length, EVP_sm3(), nil)
            }
            // EVP_Digest only fails on allocation failure or a missing algorithm;
            // SM3 is in OpenSSL 3.0's default provider, so either is fatal here.
            precondition(ok == 1 && length == 32, "OpenSSL SM3 digest failed")
            return output
        }
    }

    public func hash(_ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { hash($0) }
    }
}
