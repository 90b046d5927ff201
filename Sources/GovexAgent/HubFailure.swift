import AsyncHTTPClient
import NIOCore
import NIOPosix
import NIOSSL
#if canImport(Glibc)
import Glibc
#endif

/// A request to the hub that got no answer, said the way an operator reads it in the
/// journal: what failed and why in words (`connection refused`, `the TLS handshake failed:
/// certificate verify failed`), not a network library's type dump.
public struct HubFailure: Error, Equatable, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }

    public init(_ error: any Error) {
        reason = Self.plain(error)
    }

    static func plain(_ error: any Error) -> String {
        switch error {
        case let failure as HubFailure:
            return failure.reason
        case let error as NIOConnectionError:
            if error.dnsAError != nil || error.dnsAAAAError != nil { return "cannot resolve \(error.host)" }
            let reasons = Set(error.connectionErrors.map { plain($0.error) }).sorted()
            return "cannot connect to \(error.host):\(error.port)" + (reasons.isEmpty ? "" : ": " + reasons.joined(separator: "; "))
        case let error as IOError:
            return String(cString: strerror(error.errnoCode))
        case let error as NIOSSLError:
            switch error {
            case .handshakeFailed(let reason): return "the TLS handshake failed: " + openSSLReason(reason)
            case .uncleanShutdown: return "the hub closed the TLS connection without saying so"
            default: return "TLS: " + words(String(describing: error))
            }
        case let error as NIOSSLExtraError:
            let text = String(describing: error)
            return "TLS: " + (text.split(separator: ":", maxSplits: 1).last.map { $0.trimmingPrefix(" ") }.map(String.init) ?? text)
        case let error as ChannelError:
            switch error {
            case .connectTimeout: return "connecting timed out"
            case .eof, .outputClosed, .inputClosed, .alreadyClosed, .ioOnClosedChannel: return "the connection closed"
            default: return words(String(describing: error))
            }
        case let error as HTTPClientError:
            switch error {
            case .connectTimeout: return "connecting timed out"
            case .tlsHandshakeTimeout: return "the TLS handshake timed out"
            case .readTimeout, .deadlineExceeded: return "the hub did not answer in time"
            case .remoteConnectionClosed: return "the hub closed the connection"
            case .cancelled: return "the request was cancelled"
            case .alreadyShutdown: return "the connection to the hub was shut down"
            default: return words(String(describing: error).replacing("HTTPClientError.", with: ""))
            }
        default:
            let text = String(describing: error)
            return String(text.split(whereSeparator: \.isNewline).first ?? "").prefix(200).description
        }
    }

    /// `…:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED` → `certificate verify failed`.
    static func openSSLReason(_ error: BoringSSLError) -> String {
        let text = String(describing: error)
        let codes = text.split(whereSeparator: { !($0.isUppercase || $0.isNumber || $0 == "_") }).map(String.init)
            .filter { $0.count >= 4 && $0.contains("_") && $0.contains(where: \.isLetter) }
        guard let last = codes.last else { return words(text) }
        return last.lowercased().replacing("_", with: " ")
    }

    /// `connectTimeout(…)` → `connect timeout`: a library's case name as words, without its payload.
    static func words(_ name: String) -> String {
        let bare = name.prefix { $0 != "(" }
        var result = ""
        for character in bare {
            if character.isUppercase, !result.isEmpty { result += " " }
            result += character.lowercased()
        }
        return result
    }
}
