import XCTest
import PrismCore

/// Model-name patterns (ABI 1.4 model_patterns): `*` matches any run of characters, all else itself.
final class ModelPatternTests: XCTestCase {
    func check(_ pattern: String, matches: [String], rejects: [String], file: StaticString = #filePath, line: UInt = #line) {
        let compiled = ModelPattern(pattern)
        for name in matches { XCTAssertTrue(compiled.matches(name), "\(pattern) should match \(name)", file: file, line: line) }
        for name in rejects { XCTAssertFalse(compiled.matches(name), "\(pattern) should not match \(name)", file: file, line: line) }
    }

    func testPrefixFamilies() {
        check("claude-*", matches: ["claude-sonnet-4-6", "claude-", "claude-3-5-haiku-20241022"],
              rejects: ["claude", "Claude-x", "xclaude-a", "anthropic.claude-v2"])
        check("o1*", matches: ["o1", "o1-mini", "o1preview"], rejects: ["o", "o2-mini", "go1"])
    }

    func testExactSuffixAndMiddle() {
        check("sonar", matches: ["sonar"], rejects: ["sonar-pro", "sona", ""])
        check("*-sim", matches: ["tiny-sim", "-sim"], rejects: ["sim", "tiny-simx"])
        check("arn:aws:bedrock:*", matches: ["arn:aws:bedrock:us-east-1:123:inference-profile/x"], rejects: ["arn:aws:s3:x"])
        check("x*.*y", matches: ["xa.by", "x.y", "xabc.def.y"], rejects: ["xy", "xa.b", "ya.by"])
        check("accounts/fireworks/models/*", matches: ["accounts/fireworks/models/llama-v3p1-8b"],
              rejects: ["accounts/other/models/x"])
    }

    func testOverlappingPartsDoNotMatchTwice() {
        // "ab*ba" needs at least "abba"; "aba" would use the middle 'b' twice.
        check("ab*ba", matches: ["abba", "abxba"], rejects: ["aba", "ab", "ba"])
        check("*", matches: ["", "anything"], rejects: [])
        check("a**b", matches: ["ab", "axb"], rejects: ["a", "b", "ba"])
    }
}
