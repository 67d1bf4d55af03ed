/// OpenAI's error body, `{"error":{"message","type","param","code"}}`, which both the host and
/// plugins write. Every field is always present (null when unknown), as OpenAI's SDKs expect.
public enum OpenAIErrorBody {
    public static func make(message: String, type: String, code: String?, param: String? = nil) -> [UInt8] {
        var writer = JSONWriter(capacity: 96 + message.utf8.count)
        writer.beginObject()
        writer.key("error")
        writer.beginObject()
        writer.string("message", message)
        writer.string("type", type)
        writer.optionalString("param", param)
        writer.optionalString("code", code)
        writer.endObject()
        writer.endObject()
        return writer.bytes
    }

    /// The `error.message` of an OpenAI-style (or similar) error body, when there is one:
    /// `{"error":{"message":...}}`, `{"error":"..."}`, or `{"message":...}`.
    public static func message(in body: [UInt8]) -> String? {
        guard let value = try? JSONValue.parse(body) else { return nil }
        if let error = value["error"] {
            if let text = error.stringValue { return text }
            if let text = error["message"]?.stringValue { return text }
        }
        return value["message"]?.stringValue ?? value["detail"]?.stringValue
    }

    /// The `type`, `code` and `message` of an OpenAI error body (`{"error":{...}}`), when it is one.
    public static func fields(in body: [UInt8]) -> (type: String, code: String, message: String)? {
        guard let value = try? JSONValue.parse(body), let error = value["error"], let message = error["message"]?.stringValue
        else { return nil }
        return (error["type"]?.stringValue ?? "", error["code"]?.stringValue ?? "", message)
    }
}
