import GovexWire

/// govex's row-filter language: comparisons, IN, IS [NOT] NULL, AND/OR/NOT over
/// columns and literals. Parsed once; evaluated on decoded values with SQL's
/// three-valued logic (a row passes only when the filter is TRUE); translated to
/// SQL for snapshots, with every identifier and literal quoted.
///
///     status <> 'draft' AND (region IN ('350100', '350200') OR priority >= 3) AND closed_at IS NULL
public indirect enum RowFilter: Sendable, Equatable {
    case and(RowFilter, RowFilter)
    case or(RowFilter, RowFilter)
    case not(RowFilter)
    case compare(Operand, ComparisonOperator, Operand)
    case isNull(Operand, negated: Bool)
    case inList(Operand, [Literal], negated: Bool)

    public enum Operand: Sendable, Equatable {
        case column(String)
        case literal(Literal)
    }

    public enum Literal: Sendable, Equatable {
        case string(String)
        /// Kept as written (digits, optional sign and point) so that comparisons are exact.
        case number(String)
        case bool(Bool)
        case null
    }

    public enum ComparisonOperator: String, Sendable, CaseIterable {
        case equal = "=", notEqual = "<>", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let position: Int
        public let message: String
        public var description: String { "row filter, at character \(position + 1): \(message)" }
    }

    /// The columns the filter reads.
    public var columns: Set<String> {
        switch self {
        case let .and(a, b), let .or(a, b): return a.columns.union(b.columns)
        case .not(let a): return a.columns
        case let .compare(a, _, b): return Self.columns(a).union(Self.columns(b))
        case let .isNull(a, _), let .inList(a, _, _): return Self.columns(a)
        }
    }

    private static func columns(_ operand: Operand) -> Set<String> {
        if case .column(let name) = operand { return [name] }
        return []
    }
}

// MARK: - Parsing

extension RowFilter {
    public static func parse(_ text: String) throws(ParseError) -> RowFilter {
        var parser = Parser(tokens: try Lexer.tokens(text), end: text.count)
        let filter = try parser.orExpression()
        guard parser.isAtEnd else { throw parser.error("unexpected \(parser.describeCurrent()) after the end of the filter") }
        return filter
    }

    enum Token: Equatable {
        case identifier(String), quotedIdentifier(String), string(String), number(String)
        case symbol(String), leftParen, rightParen, comma
    }

    enum Lexer {
        static func tokens(_ text: String) throws(ParseError) -> [(Token, Int)] {
            let characters = Array(text)
            var tokens: [(Token, Int)] = []
            var index = 0
            while index < characters.count {
                let c = characters[index]
                let start = index
                if c.isWhitespace {
                    index += 1
                } else if c == "(" {
                    tokens.append((.leftParen, start)); index += 1
                } else if c == ")" {
                    tokens.append((.rightParen, start)); index += 1
                } else if c == "," {
                    tokens.append((.comma, start)); index += 1
                } else if c == "'" || c == "\"" {
                    var value = ""
                    index += 1
                    while true {
                        guard index < characters.count else {
                            throw ParseError(position: start, message: c == "'" ? "unterminated string literal" : "unterminated quoted identifier")
                        }
                        if characters[index] == c {
                            if index + 1 < characters.count, characters[index + 1] == c {
                                value.append(c); index += 2; continue
                            }
                            index += 1
                            break
                        }
                        value.append(characters[index]); index += 1
                    }
                    tokens.append((c == "'" ? .string(value) : .quotedIdentifier(value), start))
                } else if c.isNumber || (c == "-" && index + 1 < characters.count && characters[index + 1].isNumber) {
                    var value = String(c)
                    index += 1
                    var seenPoint = false
                    while index < characters.count, characters[index].isNumber || (characters[index] == "." && !seenPoint) {
                        if characters[index] == "." { seenPoint = true }
                        value.append(characters[index]); index += 1
                    }
                    guard value.last != "." else { throw ParseError(position: start, message: "number '\(value)' needs digits after the point") }
                    tokens.append((.number(value), start))
                } else if c.isLetter || c == "_" {
                    var value = ""
                    while index < characters.count, characters[index].isLetter || characters[index].isNumber || characters[index] == "_" {
                        value.append(characters[index]); index += 1
                    }
                    tokens.append((.identifier(value), start))
                } else if "=<>!".contains(c) {
                    var value = String(c)
                    index += 1
                    if index < characters.count, "=>".contains(characters[index]) { value.append(characters[index]); index += 1 }
                    guard ["=", "<>", "!=", "<", "<=", ">", ">="].contains(value) else {
                        throw ParseError(position: start, message: "unknown operator '\(value)'; use =, <>, <, <=, > or >=")
                    }
                    tokens.append((.symbol(value == "!=" ? "<>" : value), start))
                } else {
                    throw ParseError(position: start, message: "unexpected character '\(c)'; a filter uses columns, 'strings', numbers, =, <>, <, <=, >, >=, IN, IS NULL, AND, OR, NOT and parentheses")
                }
            }
            return tokens
        }
    }

    struct Parser {
        let tokens: [(Token, Int)]
        let end: Int
        var index = 0

        var isAtEnd: Bool { index == tokens.count }
        var current: Token? { isAtEnd ? nil : tokens[index].0 }

        func error(_ message: String) -> ParseError {
            ParseError(position: isAtEnd ? end : tokens[index].1, message: message)
        }

        func describeCurrent() -> String {
            switch current {
            case nil: return "end of filter"
            case .identifier(let name)?: return "'\(name)'"
            case .quotedIdentifier(let name)?: return "\"\(name)\""
            case .string(let value)?: return "'\(value)'"
            case .number(let value)?, .symbol(let value)?: return value
            case .leftParen?: return "("
            case .rightParen?: return ")"
            case .comma?: return ","
            }
        }

        mutating func keyword(_ word: String) -> Bool {
            if case .identifier(let name)? = current, name.uppercased() == word {
                index += 1
                return true
            }
            return false
        }

        mutating func orExpression() throws(ParseError) -> RowFilter {
            var left = try andExpression()
            while keyword("OR") { left = .or(left, try andExpression()) }
            return left
        }

        mutating func andExpression() throws(ParseError) -> RowFilter {
            var left = try notExpression()
            while keyword("AND") { left = .and(left, try notExpression()) }
            return left
        }

        mutating func notExpression() throws(ParseError) -> RowFilter {
            if keyword("NOT") { return .not(try notExpression()) }
            return try predicate()
        }

        mutating func predicate() throws(ParseError) -> RowFilter {
            if current == .leftParen {
                index += 1
                let inner = try orExpression()
                guard current == .rightParen else { throw error("expected ) but found \(describeCurrent())") }
                index += 1
                return inner
            }
            let left = try operand()
            if keyword("IS") {
                let negated = keyword("NOT")
                guard keyword("NULL") else { throw error("expected NULL after IS\(negated ? " NOT" : "")") }
                return .isNull(left, negated: negated)
            }
            let negatedIn = keyword("NOT")
            if keyword("IN") {
                guard current == .leftParen else { throw error("expected ( after IN") }
                index += 1
                var items: [Literal] = []
                repeat {
                    guard case .literal(let literal) = try operand() else { throw error("IN lists hold literals only") }
                    items.append(literal)
                } while consumeComma()
                guard current == .rightParen else { throw error("expected , or ) in the IN list but found \(describeCurrent())") }
                index += 1
                return .inList(left, items, negated: negatedIn)
            }
            guard !negatedIn else { throw error("expected IN after NOT") }
            guard case .symbol(let symbol)? = current, let comparison = ComparisonOperator(rawValue: symbol) else {
                throw error("expected a comparison (=, <>, <, <=, >, >=), IN or IS [NOT] NULL after the operand, found \(describeCurrent())")
            }
            index += 1
            return .compare(left, comparison, try operand())
        }

        mutating func consumeComma() -> Bool {
            guard current == .comma else { return false }
            index += 1
            return true
        }

        mutating func operand() throws(ParseError) -> Operand {
            guard let token = current else { throw error("the filter ends where a column or value was expected") }
            index += 1
            switch token {
            case .identifier(let name):
                switch name.uppercased() {
                case "TRUE": return .literal(.bool(true))
                case "FALSE": return .literal(.bool(false))
                case "NULL": return .literal(.null)
                case "AND", "OR", "NOT", "IN", "IS":
                    index -= 1
                    throw error("expected a column or value, found the keyword \(name.uppercased())")
                default: return .column(name)
                }
            case .quotedIdentifier(let name): return .column(name)
            case .string(let value): return .literal(.string(value))
            case .number(let value): return .literal(.number(value))
            default:
                index -= 1
                throw error("expected a column or value, found \(describeCurrent())")
            }
        }
    }
}
