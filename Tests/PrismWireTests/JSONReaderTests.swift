import PrismWire
import XCTest

final class JSONReaderTests: XCTestCase {
    /// Walks a whole value with the reader (entering every container): its compact text.
    private func walk(_ json: String) throws -> String {
        let bytes = Array(json.utf8)
        return try bytes.withUnsafeBytes { buffer throws -> String in
            var reader = JSONReader(buffer)
            var out = ""
            func value(_ reader: inout JSONReader) throws {
                switch reader.peek() {
                case UInt8(ascii: "{"):
                    try reader.enterObject()
                    out += "{"
                    var first = true
                    while let key = try reader.nextKey() {
                        out += (first ? "" : ",") + "\"" + String(decoding: buffer[key], as: UTF8.self) + "\":"
                        first = false
                        try value(&reader)
                    }
                    out += "}"
                case UInt8(ascii: "["):
                    try reader.enterArray()
                    out += "["
                    var first = true
                    while try reader.nextElement() {
                        out += first ? "" : ","
                        first = false
                        try value(&reader)
                    }
                    out += "]"
                default:
                    out += String(decoding: buffer[try reader.skipValue()], as: UTF8.self)
                }
            }
            try value(&reader)
            try reader.finish()
            return out
        }
    }

    func testWalksValidJSON() throws {
        XCTAssertEqual(try walk(#" { "a" : [ 1 , {"b":"c\"d"} , [] , {} ] , "e" : null } "#), #"{"a":[1,{"b":"c\"d"},[],{}],"e":null}"#)
        XCTAssertEqual(try walk("[]"), "[]")
        XCTAssertEqual(try walk("-1.5e3"), "-1.5e3")
    }

    func testRefusesInvalidJSON() {
        for json in [#"{"a":1,}"#, #"{"a":1 "b":2}"#, #"{,"a":1}"#, "[1,]", "[1 2]", "[,1]", #"{"a"}"#, "{", "[", "[1] 2", #"{"a":tru}"#, "{'a':1}"] {
            XCTAssertThrowsError(try walk(json), json)
        }
    }

    func testKeysAndValues() throws {
        let bytes = Array(#"{"type":"text","x":1}"#.utf8)
        try bytes.withUnsafeBytes { buffer in
            var reader = JSONReader(buffer)
            try reader.enterObject()
            let key = try XCTUnwrap(reader.nextKey())
            XCTAssertTrue(reader.key(key, is: "type"))
            XCTAssertFalse(reader.key(key, is: "typo"))
            let value = try reader.skipValue()
            XCTAssertTrue(reader.value(value, is: "text"))
            XCTAssertFalse(reader.value(value, is: "tex"))
            var inner = JSONReader(buffer, in: value)
            XCTAssertEqual(try inner.skipValue(), value)
        }
    }

    func testWriterAdditions() {
        let source = Array(#"{ "a" : "x\"y\\z\n" , "b" : [ 1, 2 ] }"#.utf8)
        var writer = JSONWriter()
        writer.beginObject()
        writer.member(#""type":"text""#)
        writer.key(literal: "arguments")
        source.withUnsafeBytes { writer.compactJSONString(of: $0, in: 0..<$0.count) }
        writer.key(literal: "raw")
        source.withUnsafeBytes { writer.raw(bytes: $0) }
        writer.endObject()
        let value = try! JSONValue.parse(writer.text)
        XCTAssertEqual(value["type"], .string("text"))
        XCTAssertEqual(value["arguments"]?.stringValue, #"{"a":"x\"y\\z\n","b":[1,2]}"#)
        XCTAssertEqual(value["raw"]?["b"], try! JSONValue.parse("[1,2]"))

        var out = Array("data: ".utf8)
        JSONWriter.append(to: &out) { writer in
            writer.beginObject()
            writer.integer("n", 1)
            writer.endObject()
        }
        out.append(0x0A)
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "data: {\"n\":1}\n")
    }
}
