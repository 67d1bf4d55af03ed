import PrismPluginABI

/// A model's list prices in USD per million tokens.
public struct ModelPrice: Sendable, Equatable {
    public var input: Double
    public var output: Double
    /// Cache reads; nil: priced as input.
    public var cachedInput: Double?
    /// Cache writes (Anthropic's and Bedrock's prompt cache); nil: priced as input.
    public var cacheWrite: Double?

    public init(input: Double, output: Double, cachedInput: Double? = nil, cacheWrite: Double? = nil) {
        self.input = input
        self.output = output
        self.cachedInput = cachedInput
        self.cacheWrite = cacheWrite
    }

    /// usage × price. `input_tokens` counts every prompt token, cached ones and cache writes
    /// included (OpenAI's convention, which every provider plugin reports in); reasoning tokens are
    /// output tokens, as every provider bills them.
    public func cost(of usage: prism_usage) -> Double {
        let cached = Double(usage.cached_input_tokens), written = Double(usage.cache_write_tokens)
        let uncached = max(0, Double(usage.input_tokens) - cached - written)
        return (uncached * input + cached * (cachedInput ?? input) + written * (cacheWrite ?? input)
            + Double(usage.output_tokens) * output) / 1_000_000
    }
}
