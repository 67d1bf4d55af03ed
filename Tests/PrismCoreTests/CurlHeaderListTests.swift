import CCurl
import PrismTransport
import XCTest

/// The upstream request's header lines, built as one allocation for libcurl.
final class CurlHeaderListTests: XCTestCase {
    func lines(_ headers: [(String, String)]) -> [String] {
        let list = curlHeaderList(headers)
        defer { UnsafeMutableRawPointer(list).deallocate() }
        var result: [String] = []
        var node: UnsafeMutablePointer<curl_slist>? = list
        while let current = node {
            result.append(String(cString: current.pointee.data))
            node = current.pointee.next
        }
        return result
    }

    func testEveryHeaderInOrderThenExpect() {
        XCTAssertEqual(lines([("authorization", "Bearer sk-x"), ("content-type", "application/json"), ("x-empty", ""),
                              ("x-unicode", "café ☕")]),
                       ["authorization: Bearer sk-x", "content-type: application/json", "x-empty: ", "x-unicode: café ☕",
                        "Expect:"])
    }

    func testNoHeadersIsJustExpect() {
        XCTAssertEqual(lines([]), ["Expect:"])
    }
}
