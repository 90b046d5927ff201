/// The decisions of the range-hash bisection, apart from the queries that feed them.
///
/// The key space is cut at keys sampled from the left table (in PostgreSQL's key order);
/// segment `i` of a list of cuts `c` holds the keys `c[i-1] <= k < c[i]` (open at both
/// ends), so keys present on one side only still fall into a segment. Each side reports a
/// segment's row count and the sum of its row hashes (order-independent); segments that
/// agree are equal (up to a 64-bit hash sum collision); the others are split again at the
/// sample keys inside them, or, once small, fetched and diffed row by row.
public enum Bisection {
    /// What one side says about one segment.
    public struct Summary: Equatable, Sendable {
        public var rows: Int
        /// The sum of the rows' 64-bit hashes, as PostgreSQL's numeric text.
        public var hashSum: String

        public init(rows: Int, hashSum: String) {
            self.rows = rows
            self.hashSum = hashSum
        }

        public static let empty = Summary(rows: 0, hashSum: "0")
    }

    /// A range of sample indexes: the segment's lower cut is `sample[lower]` (none when
    /// nil: from the start), its upper cut `sample[upper]` (none when nil: to the end).
    public struct Segment: Equatable, Sendable {
        public var lower: Int?
        public var upper: Int?

        public init(lower: Int?, upper: Int?) {
            self.lower = lower
            self.upper = upper
        }

        /// How many sample keys lie strictly inside.
        func inside(sampleCount: Int) -> Int {
            let from = (lower ?? -1) + 1, to = upper ?? sampleCount
            return max(0, to - from)
        }
    }

    /// `segment` cut into at most `parts` pieces at sample keys inside it.
    public static func split(_ segment: Segment, sampleCount: Int, parts: Int) -> [Segment] {
        let inside = segment.inside(sampleCount: sampleCount)
        guard inside > 0, parts > 1 else { return [segment] }
        let first = (segment.lower ?? -1) + 1
        let pieces = min(parts, inside + 1)
        var cuts: [Int] = []
        for piece in 1..<pieces {
            let cut = first + piece * inside / pieces
            if cuts.last != cut { cuts.append(cut) }
        }
        var segments: [Segment] = []
        var lower = segment.lower
        for cut in cuts {
            segments.append(Segment(lower: lower, upper: cut))
            lower = cut
        }
        segments.append(Segment(lower: lower, upper: segment.upper))
        return segments
    }

    public struct Step: Equatable, Sendable {
        /// Small differing segments (or ones that cannot be split): fetch their rows.
        public var fetch: [Segment] = []
        /// Differing segments to split and compare again.
        public var refine: [Segment] = []
        /// Rows (the larger side) in differing segments.
        public var differingRows = 0
    }

    /// Sorts compared segments into equal, to fetch, and to refine.
    public static func step(_ segments: [Segment], left: [Summary], right: [Summary], sampleCount: Int, fetchBelow: Int) -> Step {
        var step = Step()
        for (index, segment) in segments.enumerated() where left[index] != right[index] {
            let rows = max(left[index].rows, right[index].rows)
            step.differingRows += rows
            if rows <= fetchBelow || segment.inside(sampleCount: sampleCount) == 0 {
                step.fetch.append(segment)
            } else {
                step.refine.append(segment)
            }
        }
        return step
    }

    /// The sample indexes a level's segment expression cuts at (sorted, distinct).
    public static func cuts(of segments: [Segment]) -> [Int] {
        Array(Set(segments.flatMap { [$0.lower, $0.upper].compactMap { $0 } })).sorted()
    }
}
