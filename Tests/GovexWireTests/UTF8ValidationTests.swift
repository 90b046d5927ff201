@testable import GovexWire
import Testing

/// govex validates UTF-8 itself for speed; it must agree with the standard library everywhere.
@Suite("UTF-8 validation")
struct UTF8ValidationTests {
    static func agrees(_ bytes: [UInt8]) -> Bool {
        let ours = bytes.withUnsafeBufferPointer { UTF8Validation.isValid($0) }
        let stdlib = String(validating: bytes, as: UTF8.self) != nil
        return ours == stdlib
    }

    @Test("boundary sequences", arguments: [
        [UInt8](), [0x00], [0x7F], [0xC2, 0x80], [0xC1, 0xBF], [0xDF, 0xBF], [0xE0, 0xA0, 0x80], [0xE0, 0x9F, 0xBF],
        [0xED, 0x9F, 0xBF], [0xED, 0xA0, 0x80], [0xEF, 0xBF, 0xBF], [0xF0, 0x90, 0x80, 0x80], [0xF0, 0x8F, 0xBF, 0xBF],
        [0xF4, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFF], [0x80], [0xE4, 0xB8],
        [0xE4, 0xB8, 0xAD], [0xF0, 0x9F, 0x98], [0xC2],
    ])
    func boundaries(bytes: [UInt8]) {
        #expect(Self.agrees(bytes))
    }

    @Test("200,000 random and mutated sequences")
    func random() {
        var state: UInt64 = 0x5EED
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 11
        }
        let samples = Array("数据共享 一数一源 𠀀😀 ascii é".utf8)
        var disagreements: [[UInt8]] = []
        for _ in 0..<200_000 {
            var bytes: [UInt8]
            if next() % 2 == 0 {
                bytes = (0..<Int(next() % 12)).map { _ in UInt8(truncatingIfNeeded: next()) }
            } else {
                bytes = samples
                bytes[Int(next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: next())
                bytes = Array(bytes.prefix(Int(next() % UInt64(bytes.count + 1))))
            }
            if !Self.agrees(bytes) { disagreements.append(bytes) }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(5))")
    }
}
