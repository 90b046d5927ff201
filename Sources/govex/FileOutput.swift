#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum FileOutput {
    static func writeStandardError(_ string: String) {
        var string = string
        string.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }

    /// Reads a whole file, refusing one larger than `limit` bytes before reading it.
    static func readFile(_ path: String, limit: Int) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CommandError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw CommandError("cannot stat \(path): \(String(cString: strerror(errno)))") }
        let size = Int(info.st_size)
        guard size <= limit else { throw CommandError("\(path) is \(size) bytes, larger than any batch the limits allow (\(limit))") }
        var bytes = [UInt8](repeating: 0, count: size)
        var offset = 0
        while offset < size {
            let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + offset, size - offset) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw CommandError("cannot read \(path): \(String(cString: strerror(errno)))") }
            offset += count
        }
        return bytes
    }
}

struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
