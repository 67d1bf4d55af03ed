import PrismPluginABI

/// The one way the host builds a `prism_completion` (middleware's on_complete, routers'
/// feedback): its strings and usage are borrowed for the duration of `body`. `provider` nil: no
/// provider answered (an empty string in the struct).
package func withCompletion<Result>(status: Int, provider: String?, model: String, usage: prism_usage = prism_usage(),
                            latencyNanoseconds: UInt64, firstByteNanoseconds: UInt64 = 0,
                            _ body: (UnsafeMutablePointer<prism_completion>) -> Result) -> Result
{
    var usage = usage
    usage.struct_size = UInt32(MemoryLayout<prism_usage>.size)
    return withUnsafePointer(to: &usage) { usagePointer in
        (provider ?? "").withPrismString { providerString in
            model.withPrismString { modelString in
                var completion = prism_completion(
                    struct_size: UInt32(MemoryLayout<prism_completion>.size), status: UInt32(clamping: status),
                    provider: provider == nil ? prism_string(data: nil, length: 0) : providerString, model: modelString,
                    usage: usagePointer, latency_nanoseconds: latencyNanoseconds, first_byte_nanoseconds: firstByteNanoseconds)
                return body(&completion)
            }
        }
    }
}

/// An answer as a plugin call takes it (on_response, translate_response, encode_response): its
/// headers are views into the block's bytes, its body borrowed, for the duration of `work`.
package func withResponse<Result>(status: Int, headers: HeaderBlock, body: [UInt8],
                                  _ work: (UnsafePointer<prism_response>) -> Result) -> Result
{
    headers.withViews { views, count in
        body.withUnsafeBufferPointer { bodyBuffer in
            var response = prism_response(struct_size: UInt32(MemoryLayout<prism_response>.size), status: UInt32(status),
                                          headers: views, header_count: count,
                                          body: prism_bytes(data: bodyBuffer.baseAddress, length: bodyBuffer.count))
            return work(&response)
        }
    }
}

package func withResponse<Result>(status: Int, headers: [(String, String)], body: [UInt8],
                                  _ work: (UnsafePointer<prism_response>) -> Result) -> Result
{
    withResponse(status: status, headers: HeaderBlock(headers), body: body, work)
}
