/// Appends big-endian integers and length-prefixed strings to one growing buffer.
///
/// The buffer is kept larger than its contents (`used` bytes are valid) so that
/// a whole record can be written through one raw pointer after one capacity
/// check, instead of paying an array append per field.
public struct ByteWriter: Sendable {
    private var storage: [UInt8]
    private var used = 0

    public init(capacity: Int = 0) {
        storage = [UInt8](repeating: 0, count: max(capacity, 64))
    }

    public var count: Int { used }

    /// The bytes written so far (a copy; use `withBytes` to avoid it).
    public var bytes: [UInt8] { Array(storage[0..<used]) }

    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<used])) }
    }

    private mutating func reserve(_ extra: Int) {
        let needed = used + extra
        guard needed > storage.count else { return }
        var capacity = storage.count * 2
        while capacity < needed { capacity *= 2 }
        storage.append(contentsOf: repeatElement(0, count: capacity - storage.count))
    }

    /// Writes at most `bound` bytes through a cursor; the cursor must not pass the bound.
    public mutating func write(upTo bound: Int, _ body: (inout RawCursor) -> Void) {
        reserve(bound)
        let start = used
        let written = storage.withUnsafeMutableBytes { raw -> Int in
            var cursor = RawCursor(raw.baseAddress! + start)
            body(&cursor)
            return cursor.pointer - (raw.baseAddress! + start)
        }
        precondition(written <= bound, "encoder wrote \(written) bytes past its bound of \(bound)")
        used += written
    }

    public mutating func write<I: FixedWidthInteger>(_ value: I) {
        write(upTo: MemoryLayout<I>.size) { $0.put(value) }
    }

    public mutating func write(bytes other: [UInt8]) {
        write(upTo: other.count) { cursor in other.withUnsafeBytes { cursor.put(raw: $0) } }
    }

    /// A UTF-8 string behind a length of type `Length`; the caller has checked it fits.
    public mutating func write<Length: FixedWidthInteger>(string: String, lengthAs: Length.Type) {
        write(upTo: MemoryLayout<Length>.size + string.utf8.count) { $0.put(string: string, lengthAs: Length.self) }
    }

    public mutating func write<Length: FixedWidthInteger>(blob: [UInt8], lengthAs: Length.Type) {
        write(upTo: MemoryLayout<Length>.size + blob.count) { cursor in
            cursor.put(Length(truncatingIfNeeded: blob.count))
            blob.withUnsafeBytes { cursor.put(raw: $0) }
        }
    }

    /// Overwrites a big-endian integer written earlier (used for lengths known only afterwards).
    public mutating func patch<I: FixedWidthInteger>(_ value: I, at offset: Int) {
        precondition(offset + MemoryLayout<I>.size <= used)
        storage.withUnsafeMutableBytes { $0.storeBytes(of: value.bigEndian, toByteOffset: offset, as: I.self) }
    }

    public mutating func removeAll() {
        used = 0
    }
}

/// A write position inside memory `ByteWriter` has reserved.
public struct RawCursor {
    public private(set) var pointer: UnsafeMutableRawPointer

    init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }

    @inline(__always)
    public mutating func put<I: FixedWidthInteger>(_ value: I) {
        pointer.storeBytes(of: value.bigEndian, as: I.self)
        pointer += MemoryLayout<I>.size
    }

    @inline(__always)
    public mutating func put(raw: UnsafeRawBufferPointer) {
        guard let base = raw.baseAddress, raw.count > 0 else { return }
        pointer.copyMemory(from: base, byteCount: raw.count)
        pointer += raw.count
    }

    /// An unsigned LEB128 varint: 7 bits a byte, low groups first, shortest form.
    @inline(__always)
    public mutating func putVarint(_ value: UInt32) {
        var rest = value
        while rest >= 0x80 {
            put(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        put(UInt8(rest))
    }

    /// UTF-8 bytes behind a varint length.
    @inline(__always)
    public mutating func putVarintPrefixed(string: String) {
        Self.withUTF8(string) { utf8 in
            putVarint(UInt32(truncatingIfNeeded: utf8.count))
            put(raw: utf8)
        }
    }

    @inline(__always)
    public mutating func put<Length: FixedWidthInteger>(string: String, lengthAs: Length.Type) {
        Self.withUTF8(string) { utf8 in
            put(Length(truncatingIfNeeded: utf8.count))
            put(raw: utf8)
        }
    }

    /// Non-mutating access to native UTF-8 storage: no copy of the string, no retain;
    /// bridged or lazily stored strings are made contiguous first.
    @inline(__always)
    static func withUTF8(_ string: String, _ body: (UnsafeRawBufferPointer) -> Void) {
        let done: Void? = string.utf8.withContiguousStorageIfAvailable { body(UnsafeRawBufferPointer($0)) }
        if done == nil {
            var copy = string
            copy.withUTF8 { body(UnsafeRawBufferPointer($0)) }
        }
    }
}

/// Reads what `ByteWriter` wrote, checking every length against the bytes that
/// remain before trusting it, so that no length field can cause an allocation
/// larger than the input itself.
public struct ByteReader {
    public let base: UnsafeRawBufferPointer
    /// Settable from outside only because the inlinable readers below need it to be.
    public var offset: Int

    public init(_ base: UnsafeRawBufferPointer, offset: Int = 0) {
        self.base = base
        self.offset = offset
    }

    @inlinable public var remaining: Int { base.count - offset }
    @inlinable public var isAtEnd: Bool { offset == base.count }

    public enum Failure: Error, Equatable {
        /// `needed` bytes were wanted at `offset` but fewer remain.
        case truncated(offset: Int, needed: Int)
        case invalidUTF8(offset: Int)
        case invalidVarint(offset: Int)
    }

    /// Inlinable so that other modules (the pgoutput parser) get it specialised: unspecialised,
    /// every call looked up generic metadata at run time, a tenth of the capture's CPU.
    @inlinable
    public mutating func read<I: FixedWidthInteger>(_: I.Type) throws(Failure) -> I {
        let size = MemoryLayout<I>.size
        guard remaining >= size else { throw .truncated(offset: offset, needed: size) }
        let value = base.loadUnaligned(fromByteOffset: offset, as: I.self)
        offset += size
        return I(bigEndian: value)
    }

    @inlinable
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
        return try Self.string(try readBytes(length), at: start)
    }

    /// An unsigned LEB128 varint of at most 32 bits in its shortest form.
    public mutating func readVarint() throws(Failure) -> UInt32 {
        let start = offset
        var value: UInt64 = 0
        for index in 0..<5 {
            let byte = try read(UInt8.self)
            value |= UInt64(byte & 0x7F) << UInt64(7 * index)
            if byte & 0x80 == 0 {
                // A last byte of zero after the first means a longer form than needed.
                guard index == 0 || byte != 0, value <= UInt64(UInt32.max) else { throw .invalidVarint(offset: start) }
                return UInt32(value)
            }
        }
        throw .invalidVarint(offset: start)
    }

    public mutating func readVarintString() throws(Failure) -> String {
        let start = offset
        let length = Int(try readVarint())
        return try Self.string(try readBytes(length), at: start)
    }

    /// The stdlib's `String(validating:as:)` is generic and, called from here,
    /// looks up type metadata on every call; validating first and then decoding
    /// (which can no longer repair anything) is several times faster.
    public static func string(_ raw: UnsafeRawBufferPointer, at offset: Int) throws(Failure) -> String {
        let bytes = raw.bindMemory(to: UInt8.self)
        guard UTF8Validation.isValid(bytes) else { throw .invalidUTF8(offset: offset) }
        return String(decoding: bytes, as: UTF8.self)
    }

    public mutating func readVarintBlob() throws(Failure) -> [UInt8] {
        let length = Int(try readVarint())
        return try readArray(length)
    }

    public mutating func readBlob<Length: FixedWidthInteger>(lengthAs: Length.Type) throws(Failure) -> [UInt8] {
        let length = Int(try read(Length.self))
        return try readArray(length)
    }
}

/// Well-formed UTF-8 as the Unicode Standard defines it (table 3-7): no
/// overlong forms, no surrogates, nothing above U+10FFFF, no truncated sequence.
enum UTF8Validation {
    static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        let n = bytes.count
        while i < n {
            let lead = bytes[i]
            if lead < 0x80 {
                i += 1
                continue
            }
            func continuation(_ k: Int) -> Bool { i + k < n && bytes[i + k] & 0xC0 == 0x80 }
            switch lead {
            case 0xC2...0xDF:
                guard continuation(1) else { return false }
                i += 2
            case 0xE0...0xEF:
                guard continuation(1), continuation(2) else { return false }
                let second = bytes[i + 1]
                if lead == 0xE0 && second < 0xA0 { return false }   // overlong
                if lead == 0xED && second > 0x9F { return false }   // surrogates
                i += 3
            case 0xF0...0xF4:
                guard continuation(1), continuation(2), continuation(3) else { return false }
                let second = bytes[i + 1]
                if lead == 0xF0 && second < 0x90 { return false }   // overlong
                if lead == 0xF4 && second > 0x8F { return false }   // above U+10FFFF
                i += 4
            default:
                return false
            }
        }
        return true
    }
}
