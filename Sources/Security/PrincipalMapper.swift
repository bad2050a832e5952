import Foundation

/// Kafka's `ssl.principal.mapping.rules`: a comma-separated list of `RULE:pattern/replacement/[LU]`
/// and `DEFAULT`, tried in order against the client certificate's subject DN (RFC 2253 form);
/// the first rule whose pattern matches the whole DN gives the user name. `DEFAULT` (and no
/// match) keeps the full DN, as Kafka does.
public struct PrincipalMapper: Sendable {
    enum Rule: @unchecked Sendable {
        case defaultRule
        case rule(pattern: Regex<AnyRegexOutput>, replacement: String, caseChange: Character?)
    }

    let rules: [Rule]

    public struct RuleError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(rules text: String = "DEFAULT") throws(RuleError) {
        var rules: [Rule] = []
        var rest = Substring(text.trimmingCharacters(in: .whitespacesAndNewlines))
        while !rest.isEmpty {
            if rest.hasPrefix(",") { rest = rest.dropFirst().drop(while: { $0 == " " || $0 == "\n" }); continue }
            if rest.hasPrefix("DEFAULT") {
                rules.append(.defaultRule)
                rest = rest.dropFirst(7)
                continue
            }
            guard rest.hasPrefix("RULE:") else { throw RuleError(description: "invalid ssl.principal.mapping.rules near '\(rest.prefix(20))'") }
            rest = rest.dropFirst(5)
            // pattern/replacement/ with "\/" escaping a slash, then optional L or U.
            var parts: [String] = []
            var current = ""
            var escaped = false
            while parts.count < 2, let c = rest.first {
                rest = rest.dropFirst()
                if escaped {
                    if c != "/" { current.append("\\") }
                    current.append(c)
                    escaped = false
                } else if c == "\\" {
                    escaped = true
                } else if c == "/" {
                    parts.append(current)
                    current = ""
                } else {
                    current.append(c)
                }
            }
            guard parts.count == 2 else { throw RuleError(description: "invalid RULE in ssl.principal.mapping.rules: expected RULE:pattern/replacement/") }
            var caseChange: Character?
            if let c = rest.first, c == "L" || c == "U" {
                caseChange = c
                rest = rest.dropFirst()
            }
            do {
                rules.append(.rule(pattern: try Regex(parts[0]), replacement: parts[1], caseChange: caseChange))
            } catch {
                throw RuleError(description: "invalid pattern '\(parts[0])' in ssl.principal.mapping.rules: \(error)")
            }
        }
        self.rules = rules.isEmpty ? [.defaultRule] : rules
    }

    /// The user name for `distinguishedName`.
    public func map(_ distinguishedName: String) -> String {
        for rule in rules {
            switch rule {
            case .defaultRule:
                return distinguishedName
            case .rule(let pattern, let replacement, let caseChange):
                guard let match = try? pattern.wholeMatch(in: distinguishedName) else { continue }
                var result = ""
                var index = replacement.startIndex
                while index < replacement.endIndex {
                    let c = replacement[index]
                    let next = replacement.index(after: index)
                    if c == "$", next < replacement.endIndex, let group = replacement[next].wholeNumberValue {
                        if group < match.output.count, let text = match.output[group].substring { result += text }
                        index = replacement.index(after: next)
                    } else {
                        result.append(c)
                        index = next
                    }
                }
                switch caseChange {
                case "L": return result.lowercased()
                case "U": return result.uppercased()
                default: return result
                }
            }
        }
        return distinguishedName
    }
}
