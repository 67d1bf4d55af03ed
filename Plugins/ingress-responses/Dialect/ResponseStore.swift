import PluginKit
import PrismWire

/// Where stored responses live: the host's shared state in production, a dictionary in tests.
/// Every call answers through its closure exactly once (at once or later, from any thread).
package protocol ResponseStore: Sendable {
    func load(_ key: String, _ done: @escaping @Sendable (SharedState.Lookup) -> Void)
    func save(_ key: String, _ value: [UInt8], ttlSeconds: UInt64)
    func remove(_ key: String)
}

struct SharedStateResponseStore: ResponseStore {
    let state: SharedState
    init(_ state: SharedState) { self.state = state }

    func load(_ key: String, _ done: @escaping @Sendable (SharedState.Lookup) -> Void) { state.get(key, done) }

    func save(_ key: String, _ value: [UInt8], ttlSeconds: UInt64) {
        state.set(key, value, ttlMilliseconds: ttlSeconds &* 1000)
    }

    func remove(_ key: String) { state.remove(key) }
}

package struct ResponsesSettings: Sendable {
    /// The operator's `store` switch: off, nothing is stored and `previous_response_id` is refused.
    var store: Bool
    var ttlSeconds: UInt64

    package init(store: Bool, ttlSeconds: UInt64) {
        self.store = store
        self.ttlSeconds = ttlSeconds
    }
}

/// What an exchange needs besides the request: the store, the clock and new ids.
package struct ResponsesEnvironment: Sendable {
    var store: (any ResponseStore)?
    var settings: ResponsesSettings
    /// Unix seconds.
    var now: @Sendable () -> Int64
    /// A new id with this prefix ("resp_", "msg_", "fc_", "rs_").
    var newID: @Sendable (String) -> String

    package init(store: (any ResponseStore)?, settings: ResponsesSettings, now: @escaping @Sendable () -> Int64,
                 newID: @escaping @Sendable (String) -> String)
    {
        self.store = store
        self.settings = settings
        self.now = now
        self.newID = newID
    }

    /// `prefix` + 32 random hex digits.
    static let randomID: @Sendable (String) -> String = { prefix in
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for _ in 0..<2 {
            let word = generator.next() as UInt64
            for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
        }
        return prefix + Hex.encode(bytes)
    }

    /// The shared-state key of a stored response.
    static func key(_ id: String) -> String { "resp:" + id }
}

/// A stored response: the object the client saw and the conversation that led to it (canonical
/// chat messages, the answer last), which a later request continues with `previous_response_id`.
package struct StoredResponse {
    package var response: JSONValue
    package var messages: [JSONValue]

    var jsonBytes: [UInt8] {
        var writer = JSONWriter(capacity: 1024)
        writer.beginObject()
        writer.key("response")
        response.write(to: &writer)
        writer.key("messages")
        JSONValue.array(messages).write(to: &writer)
        writer.endObject()
        return writer.bytes
    }

    init(response: JSONValue, messages: [JSONValue]) {
        self.response = response
        self.messages = messages
    }

    package init?(_ bytes: [UInt8]) {
        guard let value = try? JSONValue.parse(bytes), let response = value["response"],
              let messages = value["messages"]?.arrayValue
        else { return nil }
        self.response = response
        self.messages = messages
    }
}
