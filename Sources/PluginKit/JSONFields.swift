import PrismWire

/// The members of one JSON object, read straight from its bytes without building a tree: for
/// upstream stream events, which arrive by the hundred and each need only a few fields.
///
/// A borrowed view: valid only while the bytes it was made from are (the call that received them).
public struct JSONFields {
    public let bytes: UnsafeRawBufferPointer
    public let members: [JSONMember]

    /// The object that is the whole buffer; throws when the buffer is not exactly one JSON object.
    public init(_ bytes: UnsafeRawBufferPointer) throws(JSONSyntaxError) {
        self.bytes = bytes
        members = try JSONScanner.members(bytes)
    }

    init(bytes: UnsafeRawBufferPointer, members: [JSONMember]) {
        self.bytes = bytes
        self.members = members
    }

    /// The byte range of member `name`'s value.
    public func range(_ name: StaticString) -> Range<Int>? {
        JSONScanner.member(named: name, in: members, of: bytes)?.valueRange
    }

    /// Member `name` when it is an object.
    public func object(_ name: StaticString) -> JSONFields? {
        guard let range = range(name) else { return nil }
        return JSONFields.object(bytes, range)
    }

    /// Member `name` when it is a string (decoded).
    public func string(_ name: StaticString) -> String? {
        range(name).flatMap { JSONScanner.string(bytes, in: $0) }
    }

    /// Member `name` when it is an integer.
    public func integer(_ name: StaticString) -> Int64? {
        range(name).flatMap { JSONScanner.integer(bytes, in: $0) }
    }

    /// The object elements of array member `name` (other elements are skipped).
    public func objects(_ name: StaticString) -> [JSONFields] {
        guard let range = range(name), bytes[range.lowerBound] == UInt8(ascii: "["),
              let elements = try? JSONScanner.elements(bytes, in: range)
        else { return [] }
        return elements.compactMap { JSONFields.object(bytes, $0) }
    }

    /// Member `name` as a tree, for the rare free-form value.
    public func value(_ name: StaticString) -> JSONValue? {
        guard let range = range(name) else { return nil }
        return try? JSONValue.parse(UnsafeRawBufferPointer(rebasing: bytes[range]))
    }

    /// Member `name`'s JSON text exactly as it arrived.
    public func rawText(_ name: StaticString) -> String? {
        guard let range = range(name) else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    static func object(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> JSONFields? {
        guard bytes[range.lowerBound] == UInt8(ascii: "{"),
              let members = try? JSONScanner.members(bytes, in: range)
        else { return nil }
        return JSONFields(bytes: bytes, members: members)
    }
}
