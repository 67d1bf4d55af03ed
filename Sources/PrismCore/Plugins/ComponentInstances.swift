import PrismPluginABI
import PrismWire
import Synchronization

/// Why a component instance could not be created (from the plugin's error sink).
public struct InstanceError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Calls instance_new with the instance's own host table and its configuration as JSON.
func createInstance(_ instanceNew: prism_instance_new_function?, host: UnsafePointer<prism_host_api>,
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
    func withPrismString<Result>(_ body: (prism_string) -> Result) -> Result {
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
    let inFlight = Atomic<UInt64>(0)
    var inFlightCount: UInt64 { inFlight.load(ordering: .relaxed) }
    /// The model families the plugin says this instance serves (1.4 model_patterns), copied.
    public let modelPatterns: [ModelPattern]

    init(settings: ProviderSettings, component: LoadedComponent<prism_provider_v1>, registry: PluginRegistry,
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

    func newExchange() -> ProviderExchange? {
        var state: UnsafeMutableRawPointer?
        guard table.pointee.exchange_new?(instance, &state) == PRISM_OK, let state else { return nil }
        return ProviderExchange(provider: self, state: state)
    }
}

/// One attempt's translation state in a provider plugin. `exchange_destroy` runs exactly once,
/// when the last reference goes away (normal end, error, or client disconnect).
final class ProviderExchange {
    let provider: ProviderInstance
    private let state: UnsafeMutableRawPointer
    private var table: prism_provider_v1 { provider.table.pointee }

    init(provider: ProviderInstance, state: UnsafeMutableRawPointer) {
        self.provider = provider
        self.state = state
    }

    deinit { table.exchange_destroy?(state) }

    func buildRequest(_ request: RequestView, into upstream: MessageBuilder, error: ErrorCapture)
        -> (status: prism_status, framing: prism_framing)
    {
        var framing: prism_framing = PRISM_FRAMING_NONE
        let status = upstream.withBuilder { builder in
            error.withSink { sink in table.build_request?(state, request.pointer, builder, &framing, sink) ?? PRISM_ERROR_INTERNAL }
        }
        return (status, framing)
    }

    func translateResponse(_ response: UnsafePointer<prism_response>, into client: MessageBuilder,
                           error: ErrorCapture) -> (status: prism_status, usage: prism_usage)
    {
        var usage = prism_usage()
        usage.struct_size = UInt32(MemoryLayout<prism_usage>.size)
        let status = client.withBuilder { builder in
            error.withSink { sink in table.translate_response?(state, response, builder, &usage, sink) ?? PRISM_ERROR_INTERNAL }
        }
        return (status, usage)
    }

    func translateEvent(_ event: ServerSentEvent, into collector: StreamCollector, error: ErrorCapture) -> prism_status {
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

    func translateChunk(_ chunk: UnsafeRawBufferPointer, into collector: StreamCollector, error: ErrorCapture) -> prism_status {
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

    func finishStream(into collector: StreamCollector, error: ErrorCapture) -> prism_status {
        collector.withSink { sink in
            error.withSink { errorSink in table.finish_stream?(state, sink, errorSink) ?? PRISM_ERROR_INTERNAL }
        }
    }

    /// Describes a non-2xx upstream answer; false when the plugin has no translate_error.
    func translateError(_ response: UnsafePointer<prism_response>, error: ErrorCapture) -> Bool {
        guard let translate = table.translate_error else { return false }
        _ = error.withSink { sink in translate(state, response, sink) }
        return error.isSet
    }
}

/// One configured middleware.
public final class MiddlewareInstance: @unchecked Sendable {
    public let name: String
    let table: UnsafePointer<prism_middleware_v1>
    let instance: UnsafeMutableRawPointer

    init(settings: MiddlewareSettings, component: LoadedComponent<prism_middleware_v1>,
         registry: PluginRegistry, scope: String = "") throws(InstanceError)
    {
        name = settings.name
        table = component.table
        let host = registry.hostTable(pluginID: component.pluginID, component: component.name, instance: settings.name,
                                      scope: scope)
        instance = try createInstance(table.pointee.instance_new, host: host, name: settings.name,
                                      configuration: settings.configuration)
    }

    deinit { table.pointee.instance_destroy?(instance) }

    /// Returns the plugin's action; the step's builder holds the local answer when it is RESPOND.
    func onRequest(_ request: RequestView, step: MiddlewareStep) -> prism_action {
        table.pointee.on_request?(instance, request.pointer, step.context, step.localResponse.persistentBuilder)
            ?? PRISM_ERROR_INTERNAL
    }

    func onComplete(_ request: RequestView, step: MiddlewareStep, completion: UnsafePointer<prism_completion>) {
        table.pointee.on_complete?(instance, request.pointer, step.context, completion)
    }

    /// The 1.2 response hooks, when the plugin's table is large enough to have them.
    var observesResponses: Bool {
        Int(table.pointee.struct_size) >= MemoryLayout<prism_middleware_v1>.offset(of: \prism_middleware_v1.on_stream_event)! + 8
    }

    func onResponse(_ request: RequestView, step: MiddlewareStep, response: UnsafePointer<prism_response>) {
        guard observesResponses else { return }
        table.pointee.on_response?(instance, request.pointer, step.context, response)
    }

    func onStreamEvent(_ request: RequestView, step: MiddlewareStep, event: [UInt8]) {
        guard observesResponses, let function = table.pointee.on_stream_event else { return }
        event.withUnsafeBufferPointer { buffer in
            function(instance, request.pointer, step.context, prism_bytes(data: buffer.baseAddress, length: buffer.count))
        }
    }
}

/// The configured routing strategy.
public final class RouterInstance: @unchecked Sendable {
    public let name: String
    let table: UnsafePointer<prism_router_v1>
    let instance: UnsafeMutableRawPointer

    /// `configuration` is the `routing` section (prices, race width, ... for the strategy to read).
    init(name: String, component: LoadedComponent<prism_router_v1>, registry: PluginRegistry,
         configuration: JSONValue, scope: String = "") throws(InstanceError)
    {
        self.name = name
        table = component.table
        let host = registry.hostTable(pluginID: component.pluginID, component: component.name, instance: name, scope: scope)
        instance = try createInstance(table.pointee.instance_new, host: host, name: name, configuration: configuration)
    }

    deinit { table.pointee.instance_destroy?(instance) }

    /// Candidate indices in the order to try; nil when the strategy failed.
    func select(_ request: RequestView, candidates: [RouteCandidate], health: HealthRegistry) -> [Int]? {
        var order = [UInt32](repeating: 0, count: candidates.count)
        var count = candidates.count
        let error = ErrorCapture()
        let status = withCandidateArray(candidates, health: health) { array in
            order.withUnsafeMutableBufferPointer { buffer in
                error.withSink { sink in
                    table.pointee.select?(instance, request.pointer, array, candidates.count, buffer.baseAddress, &count, sink)
                        ?? PRISM_ERROR_INTERNAL
                }
            }
        }
        guard status == PRISM_OK else { return nil }
        return order.prefix(min(count, candidates.count)).map { Int($0) }
    }

    func feedback(_ completion: UnsafePointer<prism_completion>) {
        table.pointee.feedback?(instance, completion)
    }

    /// How many candidates to race (1 = one at a time). Read only when the plugin's table is large
    /// enough to have the 1.1 field.
    var parallelAttempts: Int {
        let size = Int(table.pointee.struct_size)
        guard size >= MemoryLayout<prism_router_v1>.offset(of: \prism_router_v1.parallel_attempts)! + 8,
              let function = table.pointee.parallel_attempts
        else { return 1 }
        return max(1, Int(function(instance)))
    }

    private func withCandidateArray<Result>(_ candidates: [RouteCandidate], health: HealthRegistry,
                                            _ body: (UnsafePointer<prism_candidate>) -> Result) -> Result
    {
        // Names are kept alive by `candidates` (their providers' settings) for the whole call.
        var views: [prism_candidate] = []
        var keepAlive: [UnsafeMutableRawPointer] = []
        defer { keepAlive.forEach { $0.deallocate() } }
        func copy(_ text: String) -> prism_string {
            let count = text.utf8.count
            let storage = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 1)
            var text = text
            text.withUTF8 { if let base = $0.baseAddress { storage.copyMemory(from: base, byteCount: count) } }
            keepAlive.append(storage)
            return prism_string(data: storage.assumingMemoryBound(to: CChar.self), length: count)
        }
        for candidate in candidates {
            let providerHealth = health.byProvider[candidate.provider.settings.name]
            let state = providerHealth?.snapshot
            views.append(prism_candidate(
                struct_size: UInt32(MemoryLayout<prism_candidate>.size), weight: candidate.weight,
                provider: copy(candidate.provider.settings.name), model: copy(candidate.upstreamModel),
                healthy: (providerHealth?.isAvailable ?? true) ? 1 : 0, reserved: 0,
                in_flight: candidate.provider.inFlightCount,
                latency_milliseconds: state?.latencyMilliseconds ?? 0, error_rate: state?.errorRate ?? 0))
        }
        return views.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
