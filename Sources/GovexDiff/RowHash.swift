import GovexWire

/// A 128-bit row fingerprint: equal rows have equal hashes; different rows collide with
/// probability about 2⁻¹²⁸, so the diff compares hashes first and values only to name the
/// columns of a changed row.
public struct Hash128: Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public var description: String { Hex.encode(withUnsafeBytes(of: high.bigEndian) { Array($0) } + withUnsafeBytes(of: low.bigEndian) { Array($0) }) }
}

/// MurmurHash3 x64/128 (Austin Appleby's public-domain design), written from its
/// description: fast on 64-bit machines, no allocation, and stable across processes and
/// machines (no per-process seed), so spilled hashes stay valid.
public enum RowHash {
    /// The hash of a row: the canonical encoding of its values (the batch format's value
    /// encoding, type tag included), so `1` as int4 and `'1'` as text differ, and NULL
    /// differs from the empty string.
    public static func hash(_ values: [Value]) -> Hash128 {
        let bytes = Value.canonicalEncoding(values)
        return bytes.withUnsafeBytes { hash($0) }
    }

    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> Hash128 {
        let c1: UInt64 = 0x87c3_7b91_1142_53d5, c2: UInt64 = 0x4cf5_ad43_2745_937f
        var h1 = seed, h2 = seed
        let blocks = bytes.count / 16
        for block in 0..<blocks {
            var k1 = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: block * 16, as: UInt64.self))
            var k2 = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: block * 16 + 8, as: UInt64.self))
            k1 &*= c1; k1 = rotl(k1, 31); k1 &*= c2; h1 ^= k1
            h1 = rotl(h1, 27); h1 &+= h2; h1 = h1 &* 5 &+ 0x52dc_e729
            k2 &*= c2; k2 = rotl(k2, 33); k2 &*= c1; h2 ^= k2
            h2 = rotl(h2, 31); h2 &+= h1; h2 = h2 &* 5 &+ 0x3849_5ab5
        }
        let tail = blocks * 16, rest = bytes.count - tail
        var k1: UInt64 = 0, k2: UInt64 = 0
        if rest > 8 {
            for index in stride(from: rest - 1, through: 8, by: -1) { k2 ^= UInt64(bytes[tail + index]) << UInt64((index - 8) * 8) }
            k2 &*= c2; k2 = rotl(k2, 33); k2 &*= c1; h2 ^= k2
        }
        if rest > 0 {
            for index in stride(from: min(rest, 8) - 1, through: 0, by: -1) { k1 ^= UInt64(bytes[tail + index]) << UInt64(index * 8) }
            k1 &*= c1; k1 = rotl(k1, 31); k1 &*= c2; h1 ^= k1
        }
        h1 ^= UInt64(bytes.count); h2 ^= UInt64(bytes.count)
        h1 &+= h2; h2 &+= h1
        h1 = finalMix(h1); h2 = finalMix(h2)
        h1 &+= h2; h2 &+= h1
        return Hash128(high: h1, low: h2)
    }

    @inline(__always) static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    @inline(__always) static func finalMix(_ value: UInt64) -> UInt64 {
        var k = value
        k ^= k >> 33; k &*= 0xff51_afd7_ed55_8ccd
        k ^= k >> 33; k &*= 0xc4ce_b9fe_1a85_ec53
        k ^= k >> 33
        return k
    }
}
