/// Appends big-endian integers and length-prefixed strings to one growing buffer.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public var count: Int { bytes.count }

    public mutating func write<I: FixedWidthInteger>(_ value: I) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func write(bytes other: some Sequence<UInt8>) {
        bytes.append(contentsOf: other)
    }

    public mutating func write(raw buffer: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: buffer)
    }

    /// A UTF-8 string behind a length of type `Length`; the caller has checked it fits.
    public mutating func write<Length: FixedWidthInteger>(string: String, lengthAs: Length.Type) {
        var string = string
        string.withUTF8 { utf8 in
            write(Length(truncatingIfNeeded: utf8.count))
            bytes.append(contentsOf: UnsafeRawBufferPointer(utf8))
        }
    }

    public mutating func write<Length: FixedWidthInteger>(blob: [UInt8], lengthAs: Length.Type) {
        write(Length(truncatingIfNeeded: blob.count))
        bytes.append(contentsOf: blob)
    }

    /// Overwrites a big-endian integer written earlier (used for lengths known only afterwards).
    public mutating func patch<I: FixedWidthInteger>(_ value: I, at offset: Int) {
        withUnsafeBytes(of: value.bigEndian) { raw in
            for (i, byte) in raw.enumerated() { bytes[offset + i] = byte }
        }
    }

    public mutating func removeAll(keepingCapacity: Bool) {
        bytes.removeAll(keepingCapacity: keepingCapacity)
    }
}

/// Reads what `ByteWriter` wrote, checking every length against the bytes that
/// remain before trusting it, so that no length field can cause an allocation
/// larger than the input itself.
public struct ByteReader {
    public let base: UnsafeRawBufferPointer
    public private(set) var offset: Int

    public init(_ base: UnsafeRawBufferPointer, offset: Int = 0) {
        self.base = base
        self.offset = offset
    }

    public var remaining: Int { base.count - offset }
    public var isAtEnd: Bool { offset == base.count }

    public enum Failure: Error, Equatable {
        /// `needed` bytes were wanted at `offset` but fewer remain.
        case truncated(offset: Int, needed: Int)
        case invalidUTF8(offset: Int)
    }

    public mutating func read<I: FixedWidthInteger>(_: I.Type) throws(Failure) -> I {
        let size = MemoryLayout<I>.size
        guard remaining >= size else { throw .truncated(offset: offset, needed: size) }
        let value = base.loadUnaligned(fromByteOffset: offset, as: I.self)
        offset += size
        return I(bigEndian: value)
    }

    public mutating func readBytes(_ count: Int) throws(Failure) -> UnsafeRawBufferPointer {
        guard count >= 0, remaining >= count else { throw .truncated(offset: offset, needed: count) }
        let slice = UnsafeRawBufferPointer(rebasing: base[offset..<(offset + count)])
        offset += count
        return slice
    }

    public mutating func readArray(_ count: Int) throws(Failure) -> [UInt8] {
        Array(try readBytes(count))
    }

    public mutating func readString<Length: FixedWidthInteger>(lengthAs: Length.Type) throws(Failure) -> String {
        let start = offset
        let length = Int(try read(Length.self))
        let raw = try readBytes(length)
        guard let string = String(validating: raw.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw .invalidUTF8(offset: start)
        }
        return string
    }

    public mutating func readBlob<Length: FixedWidthInteger>(lengthAs: Length.Type) throws(Failure) -> [UInt8] {
        let length = Int(try read(Length.self))
        return try readArray(length)
    }
}
