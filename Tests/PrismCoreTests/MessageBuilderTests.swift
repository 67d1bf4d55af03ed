import PrismPluginABI
import XCTest
import PrismCore

/// The builder sink a plugin writes an upstream request or a client's answer into, called through
/// its C function pointers as a plugin would. PLUGIN_API.md promises that a header name that is
/// empty or holds a space, a control character or `:`, and a value holding CR, LF or NUL, are
/// refused with PRISM_ERROR_INVALID_REQUEST and nothing is written (a refused `set_header` keeps
/// the header it would have replaced).
final class MessageBuilderTests: XCTestCase {
    private func call(_ builder: UnsafePointer<prism_http_builder>, add: Bool = false, _ name: String, _ value: String) -> prism_status {
        name.withPrismString { name in
            value.withPrismString { value in
                add ? builder.pointee.add_header!(builder.pointee.context, name, value)
                    : builder.pointee.set_header!(builder.pointee.context, name, value)
            }
        }
    }

    func testHeadersAreLowerCasedReplacedOrAddedAndCheckedForSmuggling() {
        let message = MessageBuilder()
        message.withBuilder { builder in
            XCTAssertEqual(call(builder, "Authorization", "Bearer sk-1"), PRISM_OK)
            XCTAssertEqual(call(builder, "authorization", "Bearer sk-2"), PRISM_OK, "set replaces")
            XCTAssertEqual(call(builder, add: true, "X-Tag", "a"), PRISM_OK)
            XCTAssertEqual(call(builder, add: true, "x-tag", "b\tc"), PRISM_OK, "add appends; a tab is allowed")
            XCTAssertEqual(call(builder, "x-empty", ""), PRISM_OK)
            XCTAssertEqual(call(builder, "x-long", String(repeating: "v", count: 300)), PRISM_OK)
            for (name, value) in [("x-bad", "a\r\nX-Injected: 1"), ("x-bad", "a\nb"), ("x-bad", "a\rb"),
                                  ("x-bad", "a\u{0}b"), ("x-bad", String(repeating: "v", count: 64) + "\n"),
                                  ("", "v"), ("x bad", "v"), ("x:bad", "v"), ("x\u{1}bad", "v"), ("x\nbad", "v"),
                                  ("x\u{7f}bad", "v"), ("authorization", "x\r\ny")] {
                XCTAssertEqual(call(builder, name, value), PRISM_ERROR_INVALID_REQUEST, "\(name.debugDescription): \(value.debugDescription)")
                XCTAssertEqual(call(builder, add: true, name, value), PRISM_ERROR_INVALID_REQUEST, "\(name.debugDescription): \(value.debugDescription)")
            }
        }
        XCTAssertEqual(message.headers.map { "\($0.name): \($0.value)" },
                       ["authorization: Bearer sk-2", "x-tag: a", "x-tag: b\tc", "x-empty: ", "x-long: " + String(repeating: "v", count: 300)])
    }
}
