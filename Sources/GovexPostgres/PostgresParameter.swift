/// A statement parameter in the form PostgreSQL reads fastest for it: text, or the type's
/// binary form. Bulk parameters (a batch's bytes, thousands of keys or rows) go binary so
/// that neither side spends time on hex or array-literal escaping.
public struct PostgresParameter: Sendable {
    /// The value's bytes (text: UTF-8 without a terminator); nil = NULL.
    let bytes: [UInt8]?
    /// The type's OID, or 0 to let the server infer it from the statement.
    let typeOID: UInt32
    let isBinary: Bool

    public static func text(_ text: String?) -> PostgresParameter {
        PostgresParameter(bytes: text.map { Array($0.utf8) }, typeOID: 0, isBinary: false)
    }

    public static func bytea(_ bytes: [UInt8]) -> PostgresParameter {
        PostgresParameter(bytes: bytes, typeOID: TypeOID.bytea, isBinary: true)
    }

    public static func textArray(_ items: [String]) -> PostgresParameter {
        array(items.map { Array($0.utf8) }, arrayOID: TypeOID.textArray, elementOID: TypeOID.text)
    }

    public static func byteaArray(_ items: [[UInt8]]) -> PostgresParameter {
        array(items, arrayOID: TypeOID.byteaArray, elementOID: TypeOID.bytea)
    }

    public static func int8Array(_ items: [Int64]) -> PostgresParameter {
        array(items.map { Self.bigEndian($0) }, arrayOID: TypeOID.int8Array, elementOID: TypeOID.int8)
    }

    enum TypeOID {
        static let bytea: UInt32 = 17
        static let int8: UInt32 = 20
        static let text: UInt32 = 25
        static let byteaArray: UInt32 = 1001
        static let textArray: UInt32 = 1009
        static let int8Array: UInt32 = 1016
    }

    /// A one-dimensional array without NULLs in `array_recv`'s form: dimensions, flags,
    /// element type, then each element behind its length.
    static func array(_ elements: [[UInt8]], arrayOID: UInt32, elementOID: UInt32) -> PostgresParameter {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(20 + elements.reduce(0) { $0 + 4 + $1.count })
        bytes += bigEndian(Int32(elements.isEmpty ? 0 : 1))
        bytes += bigEndian(Int32(0))  // no NULL elements
        bytes += bigEndian(elementOID)
        if !elements.isEmpty {
            bytes += bigEndian(Int32(elements.count))
            bytes += bigEndian(Int32(1))  // lower bound
        }
        for element in elements {
            bytes += bigEndian(Int32(element.count))
            bytes += element
        }
        return PostgresParameter(bytes: bytes, typeOID: arrayOID, isBinary: true)
    }

    static func bigEndian<I: FixedWidthInteger>(_ value: I) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }
}
