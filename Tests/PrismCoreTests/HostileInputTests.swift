import PrismWire
import XCTest
import PrismCore

/// Pure checks behind the hostile-input rules: what a switch is, what a model name may not hold,
/// and how the text log keeps one event on one line.
final class HostileInputTests: XCTestCase {
    func testSwitchesAreYAML12BooleansOnly() {
        for text in ["true", "True", "TRUE"] { XCTAssertEqual(JSONValue.switchValue(text), true, text) }
        for text in ["false", "False", "FALSE"] { XCTAssertEqual(JSONValue.switchValue(text), false, text) }
        for text in ["1", "0", "y", "yes", "on", "no", "off", "yes please", "", " true", "tRUE"] {
            XCTAssertNil(JSONValue.switchValue(text), text)
        }
        XCTAssertEqual(JSONValue.bool(true).switchValue, true)
        XCTAssertEqual(JSONValue.string("false").switchValue, false)
        XCTAssertNil(JSONValue.number("1").switchValue)
        XCTAssertNil(JSONValue.null.switchValue)
    }

    func testModelNamesThatChangeAURLOrAHeaderAreRefused() {
        for model in ["gpt-4o", "meta-llama/Llama-3.1-8B-Instruct", "llama3:8b", "claude-3-5-sonnet@20240620",
                      "us.anthropic.claude-3-5-sonnet-20240620-v1:0", "openai/gpt-4.1", "a..b", ".hidden", "a/.../b", "x/", "/x"] {
            XCTAssertNil(ProxyRequest.modelNameProblem(model), model)
        }
        for model in ["m\r\nX: y", "m\n", "m\u{0}", "m\u{7f}", "az/..", "az/./x", "../x", ".", "..", "a/./", "m?x=1", "m#f", "a\\b",
                      String(repeating: "x", count: 257)] {
            XCTAssertNotNil(ProxyRequest.modelNameProblem(model), model.debugDescription)
        }
    }

    func testTheTextLogEscapesControlCharacters() {
        XCTAssertEqual(LineLogHandler.escapingControls("plain text"), "plain text")
        XCTAssertEqual(LineLogHandler.escapingControls("a\nb\r\tc"), "a\\nb\\r\\tc")
        XCTAssertEqual(LineLogHandler.escapingControls("\u{1b}[31mred\u{0}"), "\\u{1b}[31mred\\u{0}")
        XCTAssertEqual(LineLogHandler.escapingControls("ünïcödé ✓"), "ünïcödé ✓")
    }
}
