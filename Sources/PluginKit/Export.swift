import PrismPluginABI
import PrismWire

#if canImport(Glibc)
import Glibc
#endif

/// Builds a plugin's descriptor and the C thunks behind its vtables.
///
/// A C function pointer cannot capture, so each vtable function recovers its Swift object from
/// the `instance` / `exchange` pointer (an `Unmanaged` box). Only `instance_new` has no such
/// pointer: it is told which component it creates by being one of a fixed set of per-slot thunks.
/// Every thunk catches every Swift error; nothing unwinds into the host.
public enum PluginExport {
    /// Components per kind a single plugin may declare.
    public static let maximumComponentsPerKind = 8

    /// Call from the plugin's `prism_plugin_entry_v1`.
    public static func entry(_ host: UnsafePointer<prism_host_api>?,
                             _ out: UnsafeMutablePointer<UnsafePointer<prism_plugin_descriptor>?>?,
                             id: String, version: String,
                             components: [ComponentDeclaration]) -> prism_status
    {
        guard let host, host.pointee.abi_major == PRISM_ABI_MAJOR, let out else { return PRISM_ERROR_ABI }
        if let existing = Registry.descriptor {
            out.pointee = UnsafePointer(existing)
            return PRISM_OK
        }
        var providerSlot = 0, middlewareSlot = 0, routerSlot = 0, ingressSlot = 0
        let componentArray = UnsafeMutablePointer<prism_component>.allocate(capacity: max(components.count, 1))
        for (index, component) in components.enumerated() {
            let kind: prism_component_kind
            let name: String
            let vtable: UnsafeRawPointer
            switch component {
            case let .provider(componentName, type):
                guard providerSlot < maximumComponentsPerKind else { return PRISM_ERROR_INTERNAL }
                Registry.providerTypes[providerSlot] = type
                vtable = UnsafeRawPointer(makeProviderTable(slot: providerSlot))
                providerSlot += 1
                kind = PRISM_COMPONENT_PROVIDER
                name = componentName
            case let .middleware(componentName, type):
                guard middlewareSlot < maximumComponentsPerKind else { return PRISM_ERROR_INTERNAL }
                Registry.middlewareTypes[middlewareSlot] = type
                vtable = UnsafeRawPointer(makeMiddlewareTable(slot: middlewareSlot))
                middlewareSlot += 1
                kind = PRISM_COMPONENT_MIDDLEWARE
                name = componentName
            case let .router(componentName, type):
                guard routerSlot < maximumComponentsPerKind else { return PRISM_ERROR_INTERNAL }
                Registry.routerTypes[routerSlot] = type
                vtable = UnsafeRawPointer(makeRouterTable(slot: routerSlot))
                routerSlot += 1
                kind = PRISM_COMPONENT_ROUTER
                name = componentName
            case let .ingress(componentName, type):
                guard ingressSlot < maximumComponentsPerKind else { return PRISM_ERROR_INTERNAL }
                Registry.ingressTypes[ingressSlot] = type
                vtable = UnsafeRawPointer(makeIngressTable(slot: ingressSlot))
                ingressSlot += 1
                kind = PRISM_COMPONENT_INGRESS
                name = componentName
            }
            (componentArray + index).initialize(to: prism_component(
                struct_size: UInt32(MemoryLayout<prism_component>.size), kind: kind,
                name: UnsafePointer(strdup(name)), vtable: vtable))
        }
        let descriptor = UnsafeMutablePointer<prism_plugin_descriptor>.allocate(capacity: 1)
        descriptor.initialize(to: prism_plugin_descriptor(
            struct_size: UInt32(MemoryLayout<prism_plugin_descriptor>.size),
            abi_major: UInt16(PRISM_ABI_MAJOR), abi_minor: UInt16(PRISM_ABI_MINOR), min_host_abi_minor: 0,
            flags: 0, id: UnsafePointer(strdup(id)), version: UnsafePointer(strdup(version)),
            components: UnsafePointer(componentArray), component_count: UInt32(components.count), reserved: 0))
        Registry.descriptor = descriptor
        out.pointee = UnsafePointer(descriptor)
        return PRISM_OK
    }
}

/// Process-lifetime storage. Written once, by `entry` on the host's control thread, before any
/// other call into the plugin; read-only afterwards.
enum Registry {
    nonisolated(unsafe) static var descriptor: UnsafeMutablePointer<prism_plugin_descriptor>?
    nonisolated(unsafe) static var providerTypes: [(any ProviderAdapter.Type)?] = Array(repeating: nil, count: 8)
    nonisolated(unsafe) static var middlewareTypes: [(any Middleware.Type)?] = Array(repeating: nil, count: 8)
    nonisolated(unsafe) static var routerTypes: [(any RoutingStrategy.Type)?] = Array(repeating: nil, count: 8)
    nonisolated(unsafe) static var ingressTypes: [(any IngressDialect.Type)?] = Array(repeating: nil, count: 8)
}

final class ProviderBox {
    let adapter: any ProviderAdapter
    /// The adapter's model patterns as C strings, made on first request, kept until the instance goes.
    private var patterns: UnsafePointer<UnsafePointer<CChar>?>?
    private var patternCount = 0

    init(_ adapter: any ProviderAdapter) { self.adapter = adapter }

    var modelPatterns: UnsafePointer<UnsafePointer<CChar>?>? {
        if patterns == nil {
            let list = adapter.modelPatterns
            patternCount = list.count
            patterns = cStringList(list)
        }
        return patterns
    }

    deinit {
        guard let patterns else { return }
        for index in 0..<patternCount { free(UnsafeMutablePointer(mutating: patterns[index])) }
        patterns.deallocate()
    }
}

final class ExchangeBox {
    let exchange: any ProviderExchange
    init(_ exchange: any ProviderExchange) { self.exchange = exchange }
}

final class MiddlewareBox {
    let middleware: any Middleware
    init(_ middleware: any Middleware) { self.middleware = middleware }
}

final class RouterBox {
    let router: any RoutingStrategy
    init(_ router: any RoutingStrategy) { self.router = router }
}

// MARK: instance_new per slot

/// Parses the configuration and builds the component; the shared body of every instance_new thunk.
func createInstance(_ host: UnsafePointer<prism_host_api>?, _ name: prism_string, _ config: prism_bytes,
                            _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                            _ errorSink: UnsafePointer<prism_error_sink>?,
                            _ make: (PluginHost, String, JSONValue) throws(PluginError) -> AnyObject) -> prism_status
{
    guard let host, let out else { return PRISM_ERROR_INTERNAL }
    let configuration: JSONValue
    if config.length == 0 {
        configuration = .object([])
    } else {
        do {
            configuration = try JSONValue.parse(config.buffer)
        } catch {
            return PluginError.configuration("configuration is not valid JSON: \(error.reason)").report(to: errorSink)
        }
    }
    do {
        let object = try make(PluginHost(host), name.swiftString, configuration)
        out.pointee = Unmanaged.passRetained(object).toOpaque()
        return PRISM_OK
    } catch {
        return error.report(to: errorSink)
    }
}

private func providerInstanceNew(slot: Int) -> prism_instance_new_function {
    let thunks: [prism_instance_new_function] = [
        { host, name, config, out, error in makeProvider(0, host, name, config, out, error) },
        { host, name, config, out, error in makeProvider(1, host, name, config, out, error) },
        { host, name, config, out, error in makeProvider(2, host, name, config, out, error) },
        { host, name, config, out, error in makeProvider(3, host, name, config, out, error) },
        { host, name, config, out, error in makeProvider(4, host, name, config, out, error) },
        { host, name, config, out, error in makeProvider(5, host, name, config, out, error) },
        { host, name, config, out, error in makeProvider(6, host, name, config, out, error) },
        { host, name, config, out, error in makeProvider(7, host, name, config, out, error) },
    ]
    return thunks[slot]
}

private func makeProvider(_ slot: Int, _ host: UnsafePointer<prism_host_api>?, _ name: prism_string,
                          _ config: prism_bytes, _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                          _ error: UnsafePointer<prism_error_sink>?) -> prism_status
{
    guard let type = Registry.providerTypes[slot] else { return PRISM_ERROR_INTERNAL }
    return createInstance(host, name, config, out, error) { host, name, configuration throws(PluginError) in
        ProviderBox(try type.init(host: host, instanceName: name, configuration: configuration))
    }
}

private func middlewareInstanceNew(slot: Int) -> prism_instance_new_function {
    let thunks: [prism_instance_new_function] = [
        { host, name, config, out, error in makeMiddleware(0, host, name, config, out, error) },
        { host, name, config, out, error in makeMiddleware(1, host, name, config, out, error) },
        { host, name, config, out, error in makeMiddleware(2, host, name, config, out, error) },
        { host, name, config, out, error in makeMiddleware(3, host, name, config, out, error) },
        { host, name, config, out, error in makeMiddleware(4, host, name, config, out, error) },
        { host, name, config, out, error in makeMiddleware(5, host, name, config, out, error) },
        { host, name, config, out, error in makeMiddleware(6, host, name, config, out, error) },
        { host, name, config, out, error in makeMiddleware(7, host, name, config, out, error) },
    ]
    return thunks[slot]
}

private func makeMiddleware(_ slot: Int, _ host: UnsafePointer<prism_host_api>?, _ name: prism_string,
                            _ config: prism_bytes, _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                            _ error: UnsafePointer<prism_error_sink>?) -> prism_status
{
    guard let type = Registry.middlewareTypes[slot] else { return PRISM_ERROR_INTERNAL }
    return createInstance(host, name, config, out, error) { host, name, configuration throws(PluginError) in
        MiddlewareBox(try type.init(host: host, instanceName: name, configuration: configuration))
    }
}

private func routerInstanceNew(slot: Int) -> prism_instance_new_function {
    let thunks: [prism_instance_new_function] = [
        { host, name, config, out, error in makeRouter(0, host, name, config, out, error) },
        { host, name, config, out, error in makeRouter(1, host, name, config, out, error) },
        { host, name, config, out, error in makeRouter(2, host, name, config, out, error) },
        { host, name, config, out, error in makeRouter(3, host, name, config, out, error) },
        { host, name, config, out, error in makeRouter(4, host, name, config, out, error) },
        { host, name, config, out, error in makeRouter(5, host, name, config, out, error) },
        { host, name, config, out, error in makeRouter(6, host, name, config, out, error) },
        { host, name, config, out, error in makeRouter(7, host, name, config, out, error) },
    ]
    return thunks[slot]
}

private func makeRouter(_ slot: Int, _ host: UnsafePointer<prism_host_api>?, _ name: prism_string,
                        _ config: prism_bytes, _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                        _ error: UnsafePointer<prism_error_sink>?) -> prism_status
{
    guard let type = Registry.routerTypes[slot] else { return PRISM_ERROR_INTERNAL }
    return createInstance(host, name, config, out, error) { host, name, configuration throws(PluginError) in
        RouterBox(try type.init(host: host, instanceName: name, configuration: configuration))
    }
}

// MARK: vtables

func releaseBox(_ pointer: UnsafeMutableRawPointer?) {
    guard let pointer else { return }
    Unmanaged<AnyObject>.fromOpaque(pointer).release()
}

@inline(__always)
private func exchange(_ pointer: UnsafeMutableRawPointer?) -> (any ProviderExchange)? {
    guard let pointer else { return nil }
    return Unmanaged<ExchangeBox>.fromOpaque(pointer).takeUnretainedValue().exchange
}

private func makeProviderTable(slot: Int) -> UnsafeMutablePointer<prism_provider_v1> {
    let table = UnsafeMutablePointer<prism_provider_v1>.allocate(capacity: 1)
    table.initialize(to: prism_provider_v1(
        struct_size: UInt32(MemoryLayout<prism_provider_v1>.size),
        instance_new: providerInstanceNew(slot: slot),
        instance_destroy: { releaseBox($0) },
        exchange_new: { instance, out in
            guard let instance, let out else { return PRISM_ERROR_INTERNAL }
            let adapter = Unmanaged<ProviderBox>.fromOpaque(instance).takeUnretainedValue().adapter
            out.pointee = Unmanaged.passRetained(ExchangeBox(adapter.makeExchange())).toOpaque()
            return PRISM_OK
        },
        exchange_destroy: { releaseBox($0) },
        build_request: { state, request, upstream, framing, errorSink in
            guard let exchange = exchange(state), let request, let upstream else { return PRISM_ERROR_INTERNAL }
            do throws(PluginError) {
                let plan = try exchange.buildRequest(PluginRequest(request), upstream: HTTPBuilder(upstream))
                framing?.pointee = plan.framing
                return plan.answeredLocally ? PRISM_ANSWERED_LOCALLY : PRISM_OK
            } catch {
                return error.report(to: errorSink)
            }
        },
        translate_response: { state, response, client, usage, errorSink in
            guard let exchange = exchange(state), let response, let client else { return PRISM_ERROR_INTERNAL }
            do throws(PluginError) {
                let result = try exchange.translateResponse(PluginResponse(response), client: HTTPBuilder(client))
                usage?.pointee = result.abiValue
                return PRISM_OK
            } catch {
                return error.report(to: errorSink)
            }
        },
        translate_event: { state, event, client, errorSink in
            guard let exchange = exchange(state), let event, let client else { return PRISM_ERROR_INTERNAL }
            do throws(PluginError) {
                try exchange.translateEvent(PluginEvent(event), client: StreamSink(client))
                return PRISM_OK
            } catch {
                return error.report(to: errorSink)
            }
        },
        translate_chunk: { state, chunk, client, errorSink in
            guard let exchange = exchange(state), let client else { return PRISM_ERROR_INTERNAL }
            do throws(PluginError) {
                try exchange.translateChunk(chunk.buffer, client: StreamSink(client))
                return PRISM_OK
            } catch {
                return error.report(to: errorSink)
            }
        },
        finish_stream: { state, client, errorSink in
            guard let exchange = exchange(state), let client else { return PRISM_ERROR_INTERNAL }
            do throws(PluginError) {
                try exchange.finishStream(client: StreamSink(client))
                return PRISM_OK
            } catch {
                return error.report(to: errorSink)
            }
        },
        translate_error: { state, response, errorSink in
            guard let exchange = exchange(state), let response else { return PRISM_ERROR_INTERNAL }
            let upstream = PluginResponse(response)
            var error = exchange.translateError(upstream)
            // The upstream's wait hint reaches the client unless the adapter chose otherwise.
            if !error.headers.contains(where: { $0.name.lowercased() == "retry-after" }),
               let retryAfter = upstream.header("retry-after")
            {
                error.headers.append(("retry-after", retryAfter))
            }
            return error.report(to: errorSink)
        },
        config_keys: cStringList(Registry.providerTypes[slot]?.configurationKeys),
        model_patterns: { instance in
            guard let instance else { return nil }
            return Unmanaged<ProviderBox>.fromOpaque(instance).takeUnretainedValue().modelPatterns
        }))
    return table
}

/// A NULL-terminated list of strdup'd C strings (1.4 config_keys, model_patterns).
func cStringList(_ keys: [String]?) -> UnsafePointer<UnsafePointer<CChar>?>? {
    guard let keys else { return nil }
    let list = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: keys.count + 1)
    for (index, key) in keys.enumerated() { (list + index).initialize(to: UnsafePointer(strdup(key))) }
    (list + keys.count).initialize(to: nil)
    return UnsafePointer(list)
}

private func makeMiddlewareTable(slot: Int) -> UnsafeMutablePointer<prism_middleware_v1> {
    let table = UnsafeMutablePointer<prism_middleware_v1>.allocate(capacity: 1)
    table.initialize(to: prism_middleware_v1(
        struct_size: UInt32(MemoryLayout<prism_middleware_v1>.size),
        instance_new: middlewareInstanceNew(slot: slot),
        instance_destroy: { releaseBox($0) },
        on_request: { instance, request, context, response in
            guard let instance, let request, let context, let response else { return PRISM_ERROR_INTERNAL }
            let middleware = Unmanaged<MiddlewareBox>.fromOpaque(instance).takeUnretainedValue().middleware
            switch middleware.onRequest(PluginRequest(request), context: RequestContext(context),
                                        localResponse: HTTPBuilder(response)) {
            case .proceed: return PRISM_CONTINUE
            case .respond: return PRISM_RESPOND
            case .pause: return PRISM_PAUSE
            }
        },
        on_complete: { instance, request, context, completion in
            guard let instance, let request, let context, let completion else { return }
            let middleware = Unmanaged<MiddlewareBox>.fromOpaque(instance).takeUnretainedValue().middleware
            middleware.onComplete(PluginRequest(request), context: RequestContext(context),
                                  completion: Completion(completion.pointee))
        },
        on_response: { instance, request, context, response in
            guard let instance, let request, let context, let response else { return }
            let middleware = Unmanaged<MiddlewareBox>.fromOpaque(instance).takeUnretainedValue().middleware
            middleware.onResponse(PluginRequest(request), context: RequestContext(context), response: PluginResponse(response))
        },
        on_stream_event: { instance, request, context, event in
            guard let instance, let request, let context else { return }
            let middleware = Unmanaged<MiddlewareBox>.fromOpaque(instance).takeUnretainedValue().middleware
            middleware.onStreamEvent(PluginRequest(request), context: RequestContext(context), event: event.buffer)
        },
        config_keys: cStringList(Registry.middlewareTypes[slot]?.configurationKeys)))
    return table
}

private func makeRouterTable(slot: Int) -> UnsafeMutablePointer<prism_router_v1> {
    let table = UnsafeMutablePointer<prism_router_v1>.allocate(capacity: 1)
    table.initialize(to: prism_router_v1(
        struct_size: UInt32(MemoryLayout<prism_router_v1>.size),
        instance_new: routerInstanceNew(slot: slot),
        instance_destroy: { releaseBox($0) },
        select: { instance, request, candidates, count, order, capacity, errorSink in
            guard let instance, let request, let order, let capacity else { return PRISM_ERROR_INTERNAL }
            let router = Unmanaged<RouterBox>.fromOpaque(instance).takeUnretainedValue().router
            var list: [Candidate] = []
            list.reserveCapacity(count)
            for index in 0..<count {
                guard let candidate = candidates?[index] else { break }
                list.append(Candidate(provider: candidate.provider.swiftString, model: candidate.model.swiftString,
                                      weight: candidate.weight, healthy: candidate.healthy != 0,
                                      inFlight: candidate.in_flight,
                                      latencyMilliseconds: candidate.latency_milliseconds,
                                      errorRate: candidate.error_rate))
            }
            do throws(PluginError) {
                let ranked = try router.select(PluginRequest(request), candidates: list)
                var written = 0
                for index in ranked where index >= 0 && index < count && written < capacity.pointee {
                    order[written] = UInt32(index)
                    written += 1
                }
                capacity.pointee = written
                return PRISM_OK
            } catch {
                return error.report(to: errorSink)
            }
        },
        feedback: { instance, outcome in
            guard let instance, let outcome else { return }
            let router = Unmanaged<RouterBox>.fromOpaque(instance).takeUnretainedValue().router
            router.feedback(Completion(outcome.pointee))
        },
        parallel_attempts: { instance in
            guard let instance else { return 1 }
            return Unmanaged<RouterBox>.fromOpaque(instance).takeUnretainedValue().router.parallelAttempts
        },
        config_keys: cStringList(Registry.routerTypes[slot]?.configurationKeys)))
    return table
}

extension Completion {
    init(_ raw: prism_completion) {
        var usage = Usage()
        if let reported = raw.usage?.pointee {
            usage = Usage(inputTokens: reported.input_tokens, outputTokens: reported.output_tokens,
                          cachedInputTokens: reported.cached_input_tokens,
                          cacheWriteTokens: reported.cache_write_tokens, reasoningTokens: reported.reasoning_tokens)
        }
        self.init(status: raw.status, provider: raw.provider.swiftString, model: raw.model.swiftString,
                  usage: usage, latencyNanoseconds: raw.latency_nanoseconds)
    }
}
