import PrismPluginABI
import PrismWire
import Synchronization

/// Why a component instance could not be created (from the plugin's error sink).
public struct InstanceError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Calls instance_new with the instance's own host table and its configuration as JSON.
package func createInstance(_ instanceNew: prism_instance_new_function?, host: UnsafePointer<prism_host_api>,
                            name: String, configuration: JSONValue) throws(InstanceError) -> UnsafeMutableRawPointer
{
    guard let instanceNew else { throw InstanceError(message: "instance_new is NULL") }
    let json = configuration.jsonBytes
    let capture = ErrorCapture()
    var instance: UnsafeMutableRawPointer?
    let status = capture.withSink { sink in
        name.withPrismString { nameView in
            json.withUnsafeBufferPointer { buffer in
                instanceNew(host, nameView, prism_bytes(data: buffer.baseAddress, length: buffer.count), &instance, sink)
            }
        }
    }
    guard status == PRISM_OK, let instance else {
        throw InstanceError(message: capture.isSet ? capture.message : "instance_new returned status \(status)")
    }
    return instance
}

extension String {
    package func withPrismString<Result>(_ body: (prism_string) -> Result) -> Result {
        var copy = self
        return copy.withUTF8 { utf8 in
            body(prism_string(data: UnsafeRawPointer(utf8.baseAddress)?.assumingMemoryBound(to: CChar.self),
                              length: utf8.count))
        }
    }
}

/// One configured provider (e.g. `providers.openai`) backed by a provider plugin component.
public final class ProviderInstance: @unchecked Sendable {
    // The plugin promises the instance is thread-safe; the host only reads these fields.
    public let settings: ProviderSettings
    public let componentName: String
    let table: UnsafePointer<prism_provider_v1>
    let instance: UnsafeMutableRawPointer
    /// Requests sent to this provider and not yet answered (routing statistics).
    package let inFlight = Atomic<UInt64>(0)
    package var inFlightCount: UInt64 { inFlight.load(ordering: .relaxed) }
    /// The model families the plugin says this instance serves (1.4 model_patterns), copied.
    public let modelPatterns: [ModelPattern]

    package init(settings: ProviderSettings, component: LoadedComponent<prism_provider_v1>, registry: PluginRegistry,
         timeoutMilliseconds: Int64, scope: String = "") throws(InstanceError)
    {
        self.settings = settings
        componentName = component.name
        table = component.table
        var configuration = settings.section
        if case var .object(members) = configuration {
            members.append(("timeout_ms", .number(String(timeoutMilliseconds))))
            configuration = .object(members)
        }
        let host = registry.hostTable(pluginID: component.pluginID, component: component.name, instance: settings.name,
                                      scope: scope)
        let created = try createInstance(table.pointee.instance_new, host: host, name: settings.name,
                                         configuration: configuration)
        instance = created
        var patterns: [ModelPattern] = []
        if let list = table.pointee.model_patterns?(created) {
            while patterns.count < 256, let pattern = list[patterns.count] {
                patterns.append(ModelPattern(String(cString: pattern)))
            }
        }
        modelPatterns = patterns.filter { !$0.text.isEmpty }
    }

    deinit { table.pointee.instance_destroy?(instance) }

    package func newExchange() -> ProviderExchange? {
        var state: UnsafeMutableRawPointer?
        guard table.pointee.exchange_new?(instance, &state) == PRISM_OK, let state else { return nil }
        return ProviderExchange(provider: self, state: state)
    }
}

/// One attempt's translation state in a provider plugin. `exchange_destroy` runs exactly once,
/// when the last reference goes away (normal end, error, or client disconnect).
package final class ProviderExchange {
    let provider: ProviderInstance
    private let state: UnsafeMutableRawPointer
    private var table: prism_provider_v1 { provider.table.pointee }

    init(provider: ProviderInstance, state: UnsafeMutableRawPointer) {
        self.provider = provider
        self.state = state
    }

    deinit { table.exchange_destroy?(state) }

    package func buildRequest(_ request: RequestView, into upstream: MessageBuilder, error: ErrorCapture)
        -> (status: prism_status, framing: prism_framing)
    {
        var framing: prism_framing = PRISM_FRAMING_NONE
        let status = upstream.withBuilder { builder in
            error.withSink { sink in table.build_request?(state, request.pointer, builder, &framing, sink) ?? PRISM_ERROR_INTERNAL }
        }
        return (status, framing)
    }

    package func translateResponse(_ response: UnsafePointer<prism_response>, into client: MessageBuilder,
                           error: ErrorCapture) -> (status: prism_status, usage: prism_usage)
    {
        var usage = prism_usage()
        usage.struct_size = UInt32(MemoryLayout<prism_usage>.size)
        let status = client.withBuilder { builder in
            error.withSink { sink in table.translate_response?(state, response, builder, &usage, sink) ?? PRISM_ERROR_INTERNAL }
        }
        return (status, usage)
    }

    package func translateEvent(_ event: ServerSentEvent, into collector: StreamCollector, error: ErrorCapture) -> prism_status {
        event.event.withPrismString { name in
            event.id.withPrismString { id in
                event.data.withUnsafeBufferPointer { data in
                    var raw = prism_event(struct_size: UInt32(MemoryLayout<prism_event>.size), reserved: 0, event: name,
                                          data: prism_bytes(data: data.baseAddress, length: data.count), id: id)
                    return collector.withSink { sink in
                        error.withSink { errorSink in
                            table.translate_event?(state, &raw, sink, errorSink) ?? PRISM_ERROR_INTERNAL
                        }
                    }
                }
            }
        }
    }

    package func translateChunk(_ chunk: UnsafeRawBufferPointer, into collector: StreamCollector, error: ErrorCapture) -> prism_status {
        guard let translate = table.translate_chunk else {
            error.message = "provider '\(provider.settings.name)' declared RAW framing but has no translate_chunk"
            error.isSet = true
            return PRISM_ERROR_UNSUPPORTED
        }
        return collector.withSink { sink in
            error.withSink { errorSink in
                translate(state, prism_bytes(data: chunk.baseAddress?.assumingMemoryBound(to: UInt8.self), length: chunk.count),
                          sink, errorSink)
            }
        }
    }

    package func finishStream(into collector: StreamCollector, error: ErrorCapture) -> prism_status {
        collector.withSink { sink in
            error.withSink { errorSink in table.finish_stream?(state, sink, errorSink) ?? PRISM_ERROR_INTERNAL }
        }
    }

    /// Describes a non-2xx upstream answer; false when the plugin has no translate_error.
    package func translateError(_ response: UnsafePointer<prism_response>, error: ErrorCapture) -> Bool {
        guard let translate = table.translate_error else { return false }
        _ = error.withSink { sink in translate(state, response, sink) }
        return error.isSet
    }
}
