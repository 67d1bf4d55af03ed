import PrismWire
import XCTest

/// The JSON value skip is one loop in C (`prism_json_skip_value` in CPrismWireScan). It replaced a
/// recursive Swift scanner, kept here as the reference: on valid documents, their truncations and
/// tens of thousands of byte-level edits both must agree exactly, success or the same error at the
/// same offset (clients see both: "not valid JSON: <reason> at byte <offset>").
final class JSONSkipReferenceTests: XCTestCase {
    func testTheCSkipAgreesWithTheSwiftReferenceErrorForError() {
        let documents = [
            #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi \"there\" \\ \/ \b\f\n\r\t \u00e9\uD83D\uDE00"}],"#
                + #""temperature":0.7,"max_tokens":-12,"top_p":1e-3,"n":0,"x":1.5E+10,"stop":null,"stream":true,"logprobs":false}"#,
            #"  [ 1 , -0 , 0.5 , 2e5 , "a" , { } , [ ] , { "k" : [ true , false , null ] } ]  "#,
            "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"é 😀 ok\"},\"finish_reason\":null}],\"usage\":null}",
            "\t\r\n\"just a string\"\n", "-123.456e-7", "true", "{}", "[]", "[[[[{\"a\":[{}]}]]]]",
            String(repeating: "[", count: 511) + String(repeating: "]", count: 511),
            String(repeating: "[", count: 512) + String(repeating: "]", count: 512),
            String(repeating: "[", count: 513) + String(repeating: "]", count: 513),
            String(repeating: "{\"a\":", count: 600) + "1" + String(repeating: "}", count: 600),
        ]
        let alphabet = Array(#""\{}[],:0123456789-+.eEtrufalsn u/bx"#.utf8) + [0x00, 0x01, 0x1F, 0x20, 0x7F, 0xC3, 0xFF, 0x0A, 0x09]
        var cases = 0
        for document in documents {
            let bytes = Array(document.utf8)
            // Every truncation, and at up to 60 positions every byte of the alphabet put in place
            // of the one there or inserted before it, and the byte there removed.
            var variants: [[UInt8]] = [bytes]
            for cut in 0..<min(bytes.count, 300) { variants.append(Array(bytes[..<cut])) }
            for position in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 60)) {
                var removed = bytes
                removed.remove(at: position)
                variants.append(removed)
                for byte in alphabet {
                    var replaced = bytes
                    replaced[position] = byte
                    var inserted = bytes
                    inserted.insert(byte, at: position)
                    variants += [replaced, inserted]
                }
            }
            for variant in variants {
                let expected = ReferenceScanner.validate(variant)
                let actual: JSONSyntaxError? = variant.withUnsafeBytes { buffer in
                    do throws(JSONSyntaxError) {
                        try JSONScanner.validate(buffer)
                        return nil
                    } catch { return error }
                }
                XCTAssertEqual(actual, expected, "input: \(String(decoding: variant, as: UTF8.self).debugDescription)")
                cases += 1
            }
        }
        XCTAssertGreaterThan(cases, 50_000)
    }
}

/// The recursive Swift scanner the C loop replaced, rule for rule.
private struct ReferenceScanner {
    let bytes: [UInt8]
    var position = 0

    static func validate(_ bytes: [UInt8]) -> JSONSyntaxError? {
        var scanner = ReferenceScanner(bytes: bytes)
        do throws(JSONSyntaxError) {
            scanner.skipWhitespace()
            try scanner.skipValue(depth: 0)
            scanner.skipWhitespace()
            if scanner.position != bytes.count { throw scanner.error("unexpected data after the JSON value") }
            return nil
        } catch { return error }
    }

    func error(_ reason: String) -> JSONSyntaxError { JSONSyntaxError(offset: position, reason: reason) }
    func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }
    mutating func skipWhitespace() {
        while let byte = peek(), byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { position += 1 }
    }

    mutating func skipValue(depth: Int) throws(JSONSyntaxError) {
        guard let byte = peek() else { throw error("unexpected end of JSON") }
        switch byte {
        case UInt8(ascii: "\""): try skipString()
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let close = byte == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
            guard depth < 512 else { throw error("JSON nested too deeply") }
            position += 1
            skipWhitespace()
            if peek() == close {
                position += 1
                return
            }
            while true {
                skipWhitespace()
                if close == UInt8(ascii: "}") {
                    guard peek() == UInt8(ascii: "\"") else { throw error("expected a member name") }
                    try skipString()
                    skipWhitespace()
                    guard peek() == UInt8(ascii: ":") else { throw error("expected ':'") }
                    position += 1
                    skipWhitespace()
                }
                try skipValue(depth: depth + 1)
                skipWhitespace()
                guard let next = peek() else { throw error("unexpected end of JSON") }
                position += 1
                if next == close { return }
                if next != UInt8(ascii: ",") {
                    position -= 1
                    throw error(close == UInt8(ascii: "}") ? "expected ',' or '}'" : "expected ',' or ']'")
                }
            }
        case UInt8(ascii: "t"): try skipLiteral("true")
        case UInt8(ascii: "f"): try skipLiteral("false")
        case UInt8(ascii: "n"): try skipLiteral("null")
        case UInt8(ascii: "-"), 0x30...0x39: try skipNumber()
        default: throw error("unexpected character")
        }
    }

    mutating func skipString() throws(JSONSyntaxError) {
        position += 1
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                position += 1
                return
            }
            if byte == UInt8(ascii: "\\") {
                guard position + 1 < bytes.count else { break }
                switch bytes[position + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                     UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    position += 2
                case UInt8(ascii: "u"):
                    let isHex = { (byte: UInt8) in (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte) }
                    guard position + 6 <= bytes.count, bytes[(position + 2)..<(position + 6)].allSatisfy(isHex) else {
                        throw error("invalid \\u escape")
                    }
                    position += 6
                default: throw error("invalid escape")
                }
                continue
            }
            if byte < 0x20 { throw error("control character in string") }
            position += 1
        }
        throw error("unterminated string")
    }

    mutating func skipLiteral(_ literal: String) throws(JSONSyntaxError) {
        let expected = Array(literal.utf8)
        guard position + expected.count <= bytes.count, Array(bytes[position..<(position + expected.count)]) == expected else {
            throw error("invalid literal")
        }
        position += expected.count
    }

    mutating func skipNumber() throws(JSONSyntaxError) {
        func isDigit(_ byte: UInt8?) -> Bool { byte.map { (0x30...0x39).contains($0) } ?? false }
        if peek() == UInt8(ascii: "-") { position += 1 }
        guard isDigit(peek()) else { throw error("invalid number") }
        if peek() == 0x30 { position += 1 } else { while isDigit(peek()) { position += 1 } }
        if peek() == UInt8(ascii: ".") {
            position += 1
            guard isDigit(peek()) else { throw error("invalid number") }
            while isDigit(peek()) { position += 1 }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            position += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { position += 1 }
            guard isDigit(peek()) else { throw error("invalid number") }
            while isDigit(peek()) { position += 1 }
        }
    }
}
