import Synchronization
import PrismPluginABI
import PrismWire

#if canImport(Glibc)
import Glibc
#endif

/// The price table: `prices.json` (shipped beside the binary, dated, with its sources; the
/// repository's `config/prices.json`), overridden per model by `cost_tracking.custom_pricing`.
/// Looked up by the upstream model: an exact id, then the longest listed prefix (dated ids share
/// their family's price), then the same with a Bedrock or Vertex region/vendor prefix removed.
public final class PriceTable: Sendable {
    let models: [String: ModelPrice]
    /// Longest first.
    let prefixes: [(prefix: String, model: String)]
    public let asOf: String

    public init(models: [String: ModelPrice], prefixes: [String: String] = [:], asOf: String = "") {
        self.models = models
        self.prefixes = prefixes.map { ($0.key, $0.value) }.sorted { $0.prefix.utf8.count > $1.prefix.utf8.count }
        self.asOf = asOf
    }

    /// The table in `prices.json`'s shape, with `custom` (config) winning over it.
    public static func load(path: String?, custom: [String: ModelPrice]) -> (PriceTable, String?) {
        var models: [String: ModelPrice] = [:]
        var prefixes: [String: String] = [:]
        var asOf = ""
        var problem: String?
        if let path {
            switch ConfigFile.read(path) {
            case let .success(text):
                if let document = try? JSONValue.parse(text) {
                    asOf = document["as_of"]?.stringValue ?? ""
                    for (model, entry) in document["models"]?.objectValue ?? [] {
                        guard let input = entry["input"]?.doubleValue else { continue }
                        models[model] = ModelPrice(input: input, output: entry["output"]?.doubleValue ?? 0,
                                                   cachedInput: entry["cached_input"]?.doubleValue,
                                                   cacheWrite: entry["cache_write"]?.doubleValue)
                    }
                    for (prefix, model) in document["prefixes"]?.objectValue ?? [] {
                        if let model = model.stringValue { prefixes[prefix] = model }
                    }
                } else {
                    problem = "\(path) is not valid JSON: costs are known only for custom_pricing models"
                }
            case let .failure(error):
                problem = "\(error): costs are known only for custom_pricing models"
            }
        }
        for (model, price) in custom { models[model] = price }
        return (PriceTable(models: models, prefixes: prefixes, asOf: asOf), problem)
    }

    /// What `price(for:)` found for names not in the table as they are (a dated answer model, a
    /// Bedrock spelling): the derivation costs string splitting on every request. Bounded.
    private let derived = Mutex<[String: ModelPrice?]>([:])
    private static let maximumDerived = 1024

    public func price(for model: String) -> ModelPrice? {
        if let price = models[model] { return price }
        if let known = derived.withLock({ $0[model] }) { return known }
        let price = derive(model)
        derived.withLock { memo in
            if memo.count >= Self.maximumDerived { memo.removeAll(keepingCapacity: true) }
            memo[model] = price
        }
        return price
    }

    private func derive(_ model: String) -> ModelPrice? {
        if let price = lookup(model) { return price }
        // Bedrock (`anthropic.claude-…-v1:0`, `us.anthropic.…`) and Vertex (`…@20240620`) spellings.
        var name = Substring(model)
        if let at = name.firstIndex(of: "@") { name = name[..<at] }
        // `[region.]vendor.model`: the model after the vendor part.
        let parts = name.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
        if let vendor = parts.prefix(2).firstIndex(where: { ["anthropic", "amazon", "meta", "mistral", "cohere"].contains($0) }),
           vendor + 1 < parts.count
        {
            name = Substring(parts[(vendor + 1)...].joined(separator: "."))
        }
        if let colon = name.firstIndex(of: ":") { name = name[..<colon] }
        if name.hasSuffix("-v1") || name.hasSuffix("-v2") { name = name.dropLast(3) }
        return name == model ? nil : lookup(String(name))
    }

    private func lookup(_ model: String) -> ModelPrice? {
        if let price = models[model] { return price }
        for (prefix, target) in prefixes where model.hasPrefix(prefix) { return models[target] }
        return nil
    }

    /// A cost as the `x-prism-cost` header writes it: USD with up to 8 decimals, no exponent.
    public static func format(_ cost: Double) -> String {
        let scaled = (max(0, cost) * 100_000_000).rounded()
        var text = String(Int64(scaled))
        while text.count < 9 { text = "0" + text }
        var integer = String(text.dropLast(8)), fraction = String(text.suffix(8))
        while fraction.hasSuffix("0") { fraction.removeLast() }
        if integer.isEmpty { integer = "0" }
        return fraction.isEmpty ? integer : integer + "." + fraction
    }
}

extension ModelPrice {
    /// A stream's usage chunk (empty `choices` and a `usage` object) with `usage.cost` added (as
    /// OpenRouter reports it): the one place a streaming client learns its cost. Nil for every
    /// other event (checked on the bytes first, so ordinary deltas cost a byte scan).
    private static let usageMarker = Array(#""prompt_tokens""#.utf8)

    /// Called for every event of a priced stream: the events without usage are told apart in place,
    /// with no copy or allocation.
    package func pricedUsageChunk(_ payload: UnsafeRawBufferPointer) -> [UInt8]? {
        // Only a usage object has "prompt_tokens" (every chunk may carry "usage": null).
        guard firstOccurrence(of: ModelPrice.usageMarker, in: payload) != nil, case var .object(members)? = try? JSONValue.parse(payload),
              JSONValue.object(members)["choices"]?.arrayValue?.isEmpty == true,
              let index = members.firstIndex(where: { $0.0 == "usage" }), case var .object(usage) = members[index].1,
              !usage.contains(where: { $0.0 == "cost" })
        else { return nil }
        func count(_ value: JSONValue?) -> UInt64 { UInt64(clamping: value?.integerValue ?? 0) }
        var tokens = prism_usage()
        let object = JSONValue.object(usage)
        tokens.input_tokens = count(object["prompt_tokens"])
        tokens.output_tokens = count(object["completion_tokens"])
        tokens.cached_input_tokens = count(object["prompt_tokens_details"]?["cached_tokens"])
        tokens.cache_write_tokens = count(object["cache_creation_input_tokens"])
        usage.append(("cost", .number(PriceTable.format(cost(of: tokens)))))
        members[index].1 = .object(usage)
        var writer = JSONWriter(capacity: payload.count + 32)
        JSONValue.object(members).write(to: &writer)
        return writer.bytes
    }
}
