import GovexWire

/// How a row of a resource is summarised for reconcile, defined once for both sides: the
/// hub's merger stores it with each row of its copy (`govex.resource_rows.key_bucket`,
/// `row_hash`), and an agent computes it over its source rows. Rows are spread over 2³²
/// buckets by a hash of their key, so that both sides cut the key space the same way
/// whatever their collations; a range of buckets is summarised by its row count and the
/// sum (mod 2⁶⁴) of its rows' hashes: independent of order, and equal on both sides only
/// when the rows are (but for a 2⁻⁶⁴ chance per range).
public enum RowDigest {
    /// The canonical text of a key: a JSON array of its columns' text forms, in key order.
    /// The hub's copy is keyed by it.
    public static func keyText(_ key: [Column]) -> String {
        var text: [UInt8] = [UInt8(ascii: "[")]
        text.reserveCapacity(24 * key.count + 2)
        for (position, column) in key.enumerated() {
            if position > 0 { text.append(UInt8(ascii: ",")) }
            if let form = column.value.postgresText { BatchJSON.appendString(form, to: &text) } else { text.append(contentsOf: "null".utf8) }
        }
        text.append(UInt8(ascii: "]"))
        return String(decoding: text, as: UTF8.self)
    }

    /// The key's bucket: the high 32 bits of the diff core's hash of the key text.
    public static func bucket(keyText: String) -> UInt32 {
        var text = keyText
        return text.withUTF8 { UInt32(truncatingIfNeeded: RowHash.hash(UnsafeRawBufferPointer($0)).high >> 32) }
    }

    /// The row's hash: the high 64 bits of the diff core's hash of `Column.rowEncoding(row)`
    /// (the key columns, then the value columns, as a batch record carries them).
    public static func hash(rowEncoding: [UInt8]) -> UInt64 {
        rowEncoding.withUnsafeBytes { RowHash.hash($0).high }
    }

    public static func hash(row: [Column]) -> UInt64 { hash(rowEncoding: Column.rowEncoding(row)) }

    /// The rows of one range of buckets.
    public struct Summary: Sendable, Equatable, Codable {
        public var count: Int
        /// The sum of the rows' hashes, mod 2⁶⁴.
        public var sum: UInt64

        public init(count: Int = 0, sum: UInt64 = 0) {
            self.count = count
            self.sum = sum
        }

        public mutating func add(_ hash: UInt64) {
            count += 1
            sum &+= hash
        }
    }

    /// The range (of 2³²⁻ᵇⁱᵗˢ buckets) a bucket falls in, numbered by its first `bits` bits.
    public static func prefix(_ bucket: UInt32, bits: Int) -> UInt32 {
        bits == 0 ? 0 : bucket >> UInt32(32 - bits)
    }
}
