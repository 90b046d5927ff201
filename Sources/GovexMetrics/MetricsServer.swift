import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP endpoint for Prometheus: `GET /metrics` and nothing else, on
/// its own thread. Bind it to loopback or a management network only.
public final class MetricsServer: Sendable {
    public let port: Int
    private let listener: Int32

    /// `address` is `host:port` with an IPv4 host (`127.0.0.1:9741`); port 0 picks a free one.
    public init(address: String, render: @escaping @Sendable () -> [UInt8]) throws {
        let parts = address.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else { throw MetricsServerError("listen address '\(address)' must be host:port, e.g. 127.0.0.1:9741") }
        let host = parts[0] == "localhost" ? "127.0.0.1" : String(parts[0])
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw MetricsServerError("cannot create a socket: \(String(cString: strerror(errno)))") }
        var reuse: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &socketAddress.sin_addr) == 1 else {
            close(fd)
            throw MetricsServerError("listen host '\(host)' is not an IPv4 address")
        }
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw MetricsServerError("cannot listen on \(address): \(reason)")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        self.port = Int(UInt16(bigEndian: actual.sin_port))
        self.listener = fd
        let thread = Thread { Self.serve(fd, render: render) }
        thread.name = "govex-metrics"
        thread.start()
    }

    private static func serve(_ listener: Int32, render: @Sendable () -> [UInt8]) {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var request = [UInt8]()
            var chunk = [UInt8](repeating: 0, count: 1024)
            while request.count < 8192, !request.ends(with: Array("\r\n\r\n".utf8)) {
                let count = recv(client, &chunk, chunk.count, 0)
                if count <= 0 { break }
                request += chunk[0..<count]
            }
            let line = String(decoding: request.prefix { $0 != 13 }, as: UTF8.self)
            let response: [UInt8]
            if line.hasPrefix("GET /metrics ") || line == "GET /metrics" {
                let body = render()
                response = Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + body
            } else {
                let body = Array("only GET /metrics is served here\n".utf8)
                response = Array("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + body
            }
            var sent = 0
            while sent < response.count {
                let count = response.withUnsafeBytes { send(client, $0.baseAddress! + sent, response.count - sent, Int32(MSG_NOSIGNAL)) }
                if count <= 0 { break }
                sent += count
            }
            close(client)
        }
    }
}

public struct MetricsServerError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}
