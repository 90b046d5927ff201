import TOMLKit

/// A configuration mistake, located for the person who must fix it.
public struct ConfigurationError: Error, Equatable, CustomStringConvertible {
    public let file: String
    public let line: Int?
    public let key: String
    public let problem: String

    public init(file: String, line: Int?, key: String, problem: String) {
        self.file = file
        self.line = line
        self.key = key
        self.problem = problem
    }

    public var description: String {
        "\(file)\(line.map { ":\($0)" } ?? ""): \(key): \(problem)"
    }
}

/// Reads typed values and reports mistakes with their location.
public struct ConfigurationReader: Sendable {
    public let path: String
    let locate: SourceLocator

    public init(path: String, text: String) {
        self.path = path
        self.locate = SourceLocator(text: text)
    }

    /// Parses `text` as TOML; a syntax error is located.
    public static func parse(path: String, text: String) throws(ConfigurationError) -> (root: TOMLTable, reader: ConfigurationReader) {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigurationError(file: path, line: error.source.begin.line, key: "(syntax)", problem: error.description)
        } catch {
            throw ConfigurationError(file: path, line: nil, key: "(syntax)", problem: "\(error)")
        }
        return (root, ConfigurationReader(path: path, text: text))
    }

    public func error(_ key: String, section: String?, _ problem: String) -> ConfigurationError {
        let shown = section.map { "[\($0.replacing("#", with: "]#"))" + ($0.contains("#") ? "" : "]") + " \(key)" } ?? key
        return ConfigurationError(file: path, line: locate.line(of: key, in: section), key: shown, problem: problem)
    }

    /// Refuses any key of `table` that is not in `allowed`, naming the closest allowed key:
    /// a misspelt `exclude` or `filter` must stop the program, never widen what is shared.
    /// `section` is nil for the top level, where the keys are section names.
    public func rejectUnknownKeys(_ table: TOMLTable, section: String?, allowed: [String]) throws(ConfigurationError) {
        for key in table.keys.sorted() where !allowed.contains(key) {
            let kind = section == nil ? "section" : "key"
            let hint = Self.closestKey(to: key, among: allowed).map { "did you mean \($0)? " } ?? ""
            throw error(key, section: section, "unknown \(kind); \(hint)expected one of \(allowed.joined(separator: ", "))")
        }
    }

    /// The allowed name nearest to `key` by edit distance, when it is near enough to be a typo.
    public static func closestKey(to key: String, among allowed: [String]) -> String? {
        let scored = allowed.map { ($0, editDistance(key, $0)) }.min { $0.1 < $1.1 }
        guard let (name, distance) = scored, distance <= max(2, key.count / 3) else { return nil }
        return name
    }

    /// Levenshtein distance over characters, with transpositions counting once (`fitler` → `filter`).
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var before = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { current[j] = min(current[j], before[j - 2] + 1) }
            }
            (before, previous, current) = (previous, current, before)
        }
        return previous[b.count]
    }

    public func table(_ root: TOMLTable, _ name: String, optional: Bool = false) throws(ConfigurationError) -> TOMLTable? {
        guard let value = root[name] else {
            if optional { return nil }
            throw error(name, section: nil, "missing section [\(name)]")
        }
        guard let table = value.table else { throw error(name, section: nil, "must be a table [\(name)]") }
        return table
    }

    public func table(_ root: TOMLTable, _ name: String) throws(ConfigurationError) -> TOMLTable {
        try table(root, name, optional: false)!
    }

    public func string(_ table: TOMLTable?, _ key: String, section: String, default value: String? = nil) throws(ConfigurationError) -> String {
        guard let entry = table?[key] else {
            if let value { return value }
            throw error(key, section: section, "missing; expected a string")
        }
        guard let string = entry.string else { throw error(key, section: section, "expected a string, found \(entry.type)") }
        return string
    }

    public func strings(_ table: TOMLTable, _ key: String, section: String, optional: Bool = false) throws(ConfigurationError) -> [String] {
        guard let entry = table[key] else {
            if optional { return [] }
            throw error(key, section: section, "missing; expected a list of column names")
        }
        guard let array = entry.array else { throw error(key, section: section, "expected a list like [\"a\", \"b\"], found \(entry.type)") }
        var names: [String] = []
        for item in array {
            guard let name = item.string, !name.isEmpty else { throw error(key, section: section, "every item must be a non-empty column name") }
            names.append(name)
        }
        guard Set(names).count == names.count else { throw error(key, section: section, "a column is listed twice") }
        return names
    }

    public func integer(_ table: TOMLTable?, _ key: String, section: String, default value: Int, range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let entry = table?[key] else { return value }
        guard let number = entry.int else { throw error(key, section: section, "expected a whole number, found \(entry.type)") }
        guard range.contains(number) else { throw error(key, section: section, "\(number) is outside \(range.lowerBound)...\(range.upperBound)") }
        return number
    }

    /// "8MiB", "512KiB", "1GiB", or a number of bytes.
    public func size(_ table: TOMLTable?, _ key: String, section: String, default value: Int, range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let entry = table?[key] else { return value }
        let bytes: Int?
        if let number = entry.int {
            bytes = number
        } else if let text = entry.string {
            let units: [(String, Int)] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)]
            let unit = units.first { text.hasSuffix($0.0) }
            bytes = unit.flatMap { unit in Int(text.dropLast(unit.0.count).trimmingSpaces()).map { $0 * unit.1 } }
        } else {
            bytes = nil
        }
        guard let bytes else { throw error(key, section: section, "expected a size like \"8MiB\", \"512KiB\" or a number of bytes") }
        guard range.contains(bytes) else { throw error(key, section: section, "\(bytes) bytes is outside \(range.lowerBound)...\(range.upperBound)") }
        return bytes
    }

    /// "500ms", "2s", "1m".
    public func duration(_ table: TOMLTable?, _ key: String, section: String, default value: Duration) throws(ConfigurationError) -> Duration {
        guard let entry = table?[key] else { return value }
        guard let text = entry.string else { throw error(key, section: section, "expected a duration like \"500ms\", \"2s\" or \"1m\"") }
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000)]
        guard let unit = units.first(where: { text.hasSuffix($0.0) }), let number = Int64(text.dropLast(unit.0.count).trimmingSpaces()),
              number > 0, number <= 86_400_000 / unit.1 else {
            throw error(key, section: section, "expected a positive duration like \"500ms\", \"2s\" or \"1m\", found '\(text)'")
        }
        return .milliseconds(number * unit.1)
    }
}

extension Substring {
    public func trimmingSpaces() -> Substring {
        var result = self
        while result.first == " " { result = result.dropFirst() }
        while result.last == " " { result = result.dropLast() }
        return result
    }
}

/// Finds the line a key was written on (TOMLKit reports positions for syntax errors only).
struct SourceLocator: Sendable {
    let lines: [Substring]

    init(text: String) {
        lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    /// `section` is a table name, or `publish#N` for the N-th `[[publish]]`; nil for top level.
    func line(of key: String, in section: String?) -> Int? {
        var start = 0
        if let section {
            let parts = section.split(separator: "#")
            let header = parts.count == 2 ? "[[\(parts[0])]]" : "[\(section)]"
            var remaining = parts.count == 2 ? (Int(parts[1]) ?? 0) : 0
            guard let found = lines.indices.first(where: { index in
                guard lines[index].trimmingSpaces().hasPrefix(header) else { return false }
                if remaining == 0 { return true }
                remaining -= 1
                return false
            }) else { return nil }
            start = found + 1
            for index in start..<lines.count {
                let line = lines[index].trimmingSpaces()
                if line.hasPrefix("[") { return found + 1 }
                if line.hasPrefix(key + " ") || line.hasPrefix(key + "=") { return index + 1 }
            }
            return found + 1
        }
        for index in lines.indices {
            let line = lines[index].trimmingSpaces()
            if line.hasPrefix("[\(key)]") || line.hasPrefix("[[\(key)]]") || line.hasPrefix(key + " ") || line.hasPrefix(key + "=") { return index + 1 }
        }
        return nil
    }
}
