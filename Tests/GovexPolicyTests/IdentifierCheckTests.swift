import GovexPolicy
import Testing

/// Vectors computed by a separate implementation (Python, from the standards' tables).
@Suite("Identifier checks")
struct IdentifierCheckTests {
    @Test("valid citizen ID numbers pass, check character X included", arguments: ["11010519491231002X", "440306199003072315", "320102198512301237"])
    func validCitizenIDs(_ id: String) {
        #expect(IdentifierCheck.problem(id, kind: .citizenID) == nil)
    }

    @Test("invalid citizen ID numbers say what is wrong", arguments: [
        ("11010519491231002", "17 characters"),
        ("110105194912310021", "GB 11643 gives X"),
        ("11010519491231002x", "lower-case x"),
        ("1101051949123100AX", "non-digit"),
        ("110105194902300021", "not a date"),
        ("440306199003072316", "gives 5"),
    ])
    func invalidCitizenIDs(_ id: String, _ reason: String) {
        let problem = IdentifierCheck.problem(id, kind: .citizenID)
        #expect(problem?.contains(reason) == true, "\(String(describing: problem))")
    }

    @Test("valid credit codes pass, with their embedded organisation codes", arguments: [
        "91350100M000100Y43", "91110108MA01H8K26T", "91110108100012340X", "911101087632186A8H",
    ])
    func validCreditCodes(_ code: String) {
        #expect(IdentifierCheck.problem(code, kind: .creditCode) == nil)
    }

    @Test("invalid credit codes say what is wrong", arguments: [
        ("91350100M000100Y44", "GB 32100 gives 3"),
        ("91350100M000100Y5" + "3", "GB 11714 gives 4"),
        ("9135010OM000100Y43", "position 8"),
        ("B1350100M000100Y43", "registration authority"),
        ("913501", "6 characters"),
        ("91A50100M000100Y43", "administrative division"),
    ])
    func invalidCreditCodes(_ code: String, _ reason: String) {
        let problem = IdentifierCheck.problem(code, kind: .creditCode)
        #expect(problem?.contains(reason) == true, "\(String(describing: problem))")
    }

    @Test("a single changed character is always caught", arguments: ["11010519491231002X", "91350100M000100Y43"])
    func singleSubstitutions(_ valid: String) {
        let kind: IdentifierCheck.Kind = valid.count == 18 && valid.hasPrefix("91") ? .creditCode : .citizenID
        var caught = 0, tried = 0
        for index in valid.indices {
            for replacement in "0123456789X" where replacement != valid[index] {
                var mutated = valid
                mutated.replaceSubrange(index...index, with: String(replacement))
                tried += 1
                if IdentifierCheck.problem(mutated, kind: kind) != nil { caught += 1 }
            }
        }
        #expect(caught == tried, "\(tried - caught) of \(tried) single substitutions passed")
    }
}
