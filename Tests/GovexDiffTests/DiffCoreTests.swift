import Foundation
import GovexDiff
import GovexTestSupport
import GovexWire
import Testing

/// The diff core without a database: hashes, key order, the merge walk and the spilling
/// hash diff, each against a brute-force comparison of random row sets.
@Suite("Diff core")
struct DiffCoreTests {
    @Test("MurmurHash3 x64/128 gives the published value for the classic test sentence, and 0 for nothing")
    func hashVector() {
        let sentence = Array("The quick brown fox jumps over the lazy dog".utf8)
        let hash = sentence.withUnsafeBytes { RowHash.hash($0) }
        #expect(hash == Hash128(high: 0xe34b_bc7b_bc07_1b6c, low: 0x7a43_3ca9_c49a_9347))
        #expect([UInt8]().withUnsafeBytes { RowHash.hash($0) } == Hash128(high: 0, low: 0))
        // Every tail length goes through its own branch.
        let hashes = Set((0...40).map { length in Array(sentence.prefix(length)).withUnsafeBytes { RowHash.hash($0) } })
        #expect(hashes.count == 41)
    }

    @Test("rows that differ only in ways data-diff would smooth over hash differently")
    func canonicalDifferences() throws {
        let pairs: [(Value, Value)] = [
            (.text("a"), .text("a ")), (.null, .text("")), (.numeric(try Numeric("1.0")), .numeric(try Numeric("1.00"))),
            (.int4(1), .text("1")), (.timestamptz(0), .timestamptz(1)), (.text("é"), .text("e\u{301}")),
        ]
        for (a, b) in pairs {
            #expect(DiffRow(key: [.int8(1)], values: [a]).hash != DiffRow(key: [.int8(1)], values: [b]).hash, "\(a) vs \(b)")
        }
        #expect(DiffRow(key: [.int8(1)], values: [.text("x"), .null]).hash == DiffRow(key: [.int8(2)], values: [.text("x"), .null]).hash,
                "the key is not part of the compared values")
    }

    @Test("key order is PostgreSQL's under COLLATE \"C\": bytes for text, numbers for integers, NULL last")
    func keyOrder() {
        #expect(KeyOrder.compare([.text("B")], [.text("a")]) < 0, "upper case before lower case, byte-wise")
        #expect(KeyOrder.compare([.text("ab")], [.text("abc")]) < 0)
        #expect(KeyOrder.compare([.text("z")], [.text("é")]) < 0, "UTF-8 lead bytes sort after ASCII")
        #expect(KeyOrder.compare([.int8(-5)], [.int8(3)]) < 0)
        #expect(KeyOrder.compare([.int4(2), .text("b")], [.int4(2), .text("a")]) > 0)
        #expect(KeyOrder.compare([.null], [.int8(1)]) > 0)
        #expect(KeyOrder.supports(.text) && !KeyOrder.supports(.numeric))
    }

    /// Random sides: shared keys, some only on one side, some changed in one column.
    static func randomSides(_ random: inout SplitMix64, rows: Int) -> (left: [DiffRow], right: [DiffRow]) {
        var left: [DiffRow] = [], right: [DiffRow] = []
        var key: Int64 = 0
        for _ in 0..<rows {
            key += Int64(1 + random.next() % (random.next() % 4 == 0 ? 1000 : 3))  // gaps, some large
            let values: [Value] = [.text("v\(random.next() % 5)"), random.next() % 7 == 0 ? .null : .int8(Int64(random.next() % 100))]
            switch random.next() % 10 {
            case 0: left.append(DiffRow(key: [.int8(key)], values: values))
            case 1: right.append(DiffRow(key: [.int8(key)], values: values))
            case 2:
                left.append(DiffRow(key: [.int8(key)], values: values))
                var changed = values
                changed[Int(random.next() % 2)] = .text("changed")
                right.append(DiffRow(key: [.int8(key)], values: changed))
            default:
                left.append(DiffRow(key: [.int8(key)], values: values))
                right.append(DiffRow(key: [.int8(key)], values: values))
            }
        }
        return (left, right)
    }

    static func bruteForce(_ left: [DiffRow], _ right: [DiffRow]) -> [Difference] {
        let rightByKey = Dictionary(uniqueKeysWithValues: right.map { ($0.key, $0) })
        let leftByKey = Dictionary(uniqueKeysWithValues: left.map { ($0.key, $0) })
        var found: [Difference] = []
        for row in left {
            if let other = rightByKey[row.key] {
                let columns = row.values.indices.filter { row.values[$0] != other.values[$0] }
                if !columns.isEmpty { found.append(Difference(key: row.key, kind: .changed, columns: columns)) }
            } else {
                found.append(Difference(key: row.key, kind: .onlyLeft))
            }
        }
        for row in right where leftByKey[row.key] == nil { found.append(Difference(key: row.key, kind: .onlyRight)) }
        return found.sorted { KeyOrder.compare($0.key, $1.key) < 0 }
    }

    @Test("the merge walk finds exactly what a brute-force comparison finds (500 random cases)")
    func mergeWalk() {
        var random = SplitMix64(state: 0xD1FF)
        for _ in 0..<500 {
            let (left, right) = Self.randomSides(&random, rows: Int(random.next() % 120))
            #expect(MergeDiff.differences(left: left, right: right) == Self.bruteForce(left, right))
        }
    }

    /// Rows as `COPY` text, cut into chunks of random sizes (a chunk may hold one row).
    static func copyChunks(_ rows: [DiffRow], _ random: inout SplitMix64) -> [CopyChunk] {
        func field(_ value: Value) -> String {
            switch value {
            case .null: "\\N"
            case let .int8(number): String(number)
            case let .text(text): text
            default: "\(value)"
            }
        }
        var chunks: [CopyChunk] = []
        var chunk = CopyChunk()
        for row in rows {
            let line = (row.key + row.values).map(field).joined(separator: "\t") + "\n"
            Array(line.utf8).withUnsafeBytes { chunk.append($0) }
            if random.next() % 8 == 0 {
                chunks.append(chunk)
                chunk = CopyChunk()
            }
        }
        if chunk.count > 0 { chunks.append(chunk) }
        return chunks
    }

    @Test("the merge walk over COPY text (equal rows by bytes, keys parsed only where rows differ) equals brute force (500 random cases)")
    func copyMergeWalk() throws {
        var random = SplitMix64(state: 0xC0B1)
        for _ in 0..<500 {
            let (left, right) = Self.randomSides(&random, rows: Int(random.next() % 120))
            var parsed = 0
            let walk = CopyMergeDiff(keyCount: 1, fieldCount: 3) { field in
                parsed += 1
                return [.int8(Int64(String(decoding: field, as: UTF8.self))!)]
            }
            var found: [Difference] = []
            try walk.run(left: Self.copyChunks(left, &random).makeIterator(), right: Self.copyChunks(right, &random).makeIterator()) {
                found.append($0)
            }
            let expected = Self.bruteForce(left, right)
            #expect(found == expected)
            #expect(parsed <= 4 * expected.count, "keys are parsed only around differences")
        }
        let short = CopyMergeDiff(keyCount: 2, fieldCount: 3) { _ in [] }
        var rows = CopyChunk()
        Array("1\n".utf8).withUnsafeBytes { rows.append($0) }
        #expect(throws: CopyRowError.self) { try short.run(left: [rows].makeIterator(), right: [CopyChunk]().makeIterator()) { _ in } }
    }

    @Test("the hash diff agrees in memory and when it spills to partition files (and deeper partitions)")
    func hashDiff() throws {
        var random = SplitMix64(state: 0x5111)
        let directory = Subprocess.temporaryDirectory("govex-diff-spill")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for budget in [1 << 30, 20_000, 2_000] {
            for _ in 0..<30 {
                var (left, right) = Self.randomSides(&random, rows: Int(random.next() % 400))
                left.shuffle(using: &random)
                right.shuffle(using: &random)
                var join = HashDiff(budget: budget, directory: directory, partitions: 4)
                var found: [Difference] = []
                try join.run(left: left, right: right) { found.append($0) }
                found.sort { KeyOrder.compare($0.key, $1.key) < 0 }
                #expect(found == Self.bruteForce(left.sorted { KeyOrder.compare($0.key, $1.key) < 0 }, right))
                if budget == 2_000 && left.count > 100 { #expect(join.spilledBytes > 0) }
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty, "spill files are removed")
    }

    @Test("segments split at the sample keys inside them; only differing ones go on; small or unsplittable ones are fetched")
    func bisectionSteps() {
        let whole = Bisection.Segment(lower: nil, upper: nil)
        let parts = Bisection.split(whole, sampleCount: 10, parts: 4)
        #expect(parts.count == 4 && parts.first?.lower == nil && parts.last?.upper == nil)
        #expect(zip(parts, parts.dropFirst()).allSatisfy { $0.upper == $1.lower }, "contiguous")
        #expect(Bisection.split(Bisection.Segment(lower: 3, upper: 4), sampleCount: 10, parts: 4) == [Bisection.Segment(lower: 3, upper: 4)])
        let summaries = (0..<4).map { Bisection.Summary(rows: 100 * $0, hashSum: "\($0)") }
        var right = summaries
        right[1].hashSum = "x"
        right[3].rows += 1
        let step = Bisection.step(parts, left: summaries, right: right, sampleCount: 10, fetchBelow: 150)
        #expect(step.fetch == [parts[1]] && step.refine == [parts[3]] && step.differingRows == 401)
        #expect(Bisection.cuts(of: parts).count == 3)
    }
}
