import PrismPluginABI
import PrismWire

#if canImport(Glibc)
import Glibc
#endif

// prism_ingress_v1 (ABI 1.5) over the byte-based IngressDialect / IngressExchange of Ingress.swift.

final class IngressBox {
    let dialect: any IngressDialect
    /// The routes as the ABI wants them: strdup'd strings, kept until the instance goes.
    let routes: UnsafeMutablePointer<prism_route>
    let routeCount: Int

    init(_ dialect: any IngressDialect) {
        self.dialect = dialect
        let list = dialect.routes
        routeCount = list.count
        routes = UnsafeMutablePointer<prism_route>.allocate(capacity: max(1, list.count))
        for (index, route) in list.enumerated() {
            (routes + index).initialize(to: prism_route(
                struct_size: UInt32(MemoryLayout<prism_route>.size),
                flags: route.isPrefix ? PRISM_ROUTE_PREFIX : 0,
                method: IngressBox.ownedString(route.method), path: IngressBox.ownedString(route.path),
                api: IngressBox.ownedString(route.api)))
        }
    }

    private static func ownedString(_ text: String) -> prism_string {
        let copy = strdup(text)
        return prism_string(data: UnsafePointer(copy), length: text.utf8.count)
    }

    deinit {
        for index in 0..<routeCount {
            let route = routes[index]
            free(UnsafeMutableRawPointer(mutating: route.method.data))
            free(UnsafeMutableRawPointer(mutating: route.path.data))
            free(UnsafeMutableRawPointer(mutating: route.api.data))
        }
        routes.deallocate()
    }
}

final class IngressExchangeBox {
    let exchange: any IngressExchange
    init(_ exchange: any IngressExchange) { self.exchange = exchange }
}

@inline(__always)
private func ingressExchange(_ pointer: UnsafeMutableRawPointer?) -> (any IngressExchange)? {
    guard let pointer else { return nil }
    return Unmanaged<IngressExchangeBox>.fromOpaque(pointer).takeUnretainedValue().exchange
}

private func ingressInstanceNew(slot: Int) -> prism_instance_new_function {
    let thunks: [prism_instance_new_function] = [
        { host, name, config, out, error in makeIngress(0, host, name, config, out, error) },
        { host, name, config, out, error in makeIngress(1, host, name, config, out, error) },
        { host, name, config, out, error in makeIngress(2, host, name, config, out, error) },
        { host, name, config, out, error in makeIngress(3, host, name, config, out, error) },
        { host, name, config, out, error in makeIngress(4, host, name, config, out, error) },
        { host, name, config, out, error in makeIngress(5, host, name, config, out, error) },
        { host, name, config, out, error in makeIngress(6, host, name, config, out, error) },
        { host, name, config, out, error in makeIngress(7, host, name, config, out, error) },
    ]
    return thunks[slot]
}

private func makeIngress(_ slot: Int, _ host: UnsafePointer<prism_host_api>?, _ name: prism_string,
                         _ config: prism_bytes, _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                         _ error: UnsafePointer<prism_error_sink>?) -> prism_status
{
    guard let type = Registry.ingressTypes[slot] else { return PRISM_ERROR_INTERNAL }
    return createInstance(host, name, config, out, error) { host, name, configuration throws(PluginError) in
        IngressBox(try type.init(host: host, instanceName: name, configuration: configuration))
    }
}

/// Writes a decision into the host's builder (and error sink) and returns the ABI status.
private func deliver(_ result: DecodeResult, to builder: UnsafePointer<prism_http_builder>,
                     error: UnsafePointer<prism_error_sink>?) -> prism_status
{
    let http = HTTPBuilder(builder)
    switch result {
    case let .forward(canonical), let .forwardTranslated(canonical):
        for header in canonical.headers { http.setHeader(header.name, header.value) }
        http.writeBody(canonical.body)
        if case .forwardTranslated = result { return PRISM_TRANSLATE_ONLY }
        return PRISM_OK
    case let .answer(answer):
        writeAnswer(answer, to: http)
        return PRISM_ANSWERED_LOCALLY
    case let .nativeOnly(canonical, failure):
        for header in canonical.headers { http.setHeader(header.name, header.value) }
        http.writeBody(canonical.body)
        _ = failure.report(to: error)
        return PRISM_OK
    case let .failure(failure):
        return failure.report(to: error)
    }
}

private func writeAnswer(_ answer: ClientAnswer, to http: HTTPBuilder) {
    http.setStatus(answer.status)
    for header in answer.headers { http.addHeader(header.name, header.value) }
    http.writeBody(answer.body)
}

/// The pointers a pending decode writes through; the host keeps them valid until resume.
private struct PendingDecodeTarget: @unchecked Sendable {
    let builder: UnsafePointer<prism_http_builder>
    let resume: UnsafePointer<prism_decode_resume>
    let error: UnsafePointer<prism_error_sink>?
}

/// Appends what the plugin writes to a host bytes sink.
private func writeBytes(_ bytes: [UInt8], to sink: UnsafePointer<prism_bytes_sink>) {
    guard !bytes.isEmpty else { return }
    bytes.withUnsafeBufferPointer { buffer in
        sink.pointee.write?(sink.pointee.context, prism_bytes(data: buffer.baseAddress, length: buffer.count))
    }
}

func makeIngressTable(slot: Int) -> UnsafeMutablePointer<prism_ingress_v1> {
    let table = UnsafeMutablePointer<prism_ingress_v1>.allocate(capacity: 1)
    table.initialize(to: prism_ingress_v1(
        struct_size: UInt32(MemoryLayout<prism_ingress_v1>.size),
        instance_new: ingressInstanceNew(slot: slot),
        instance_destroy: { releaseBox($0) },
        routes: { instance, count in
            guard let instance else { return nil }
            let box = Unmanaged<IngressBox>.fromOpaque(instance).takeUnretainedValue()
            count?.pointee = box.routeCount
            return UnsafePointer(box.routes)
        },
        exchange_new: { instance, out in
            guard let instance, let out else { return PRISM_ERROR_INTERNAL }
            let dialect = Unmanaged<IngressBox>.fromOpaque(instance).takeUnretainedValue().dialect
            out.pointee = Unmanaged.passRetained(IngressExchangeBox(dialect.makeExchange())).toOpaque()
            return PRISM_OK
        },
        exchange_destroy: { releaseBox($0) },
        decode_request: { state, request, canonical, resume, errorSink in
            guard let exchange = ingressExchange(state), let request, let canonical else { return PRISM_ERROR_INTERNAL }
            let view = PluginRequest(request)
            let incoming = IngressRequest(api: view.api, method: view.method, path: view.path, requestID: view.requestID,
                                          body: view.body, lookup: { view.header($0) })
            let target = resume.map { PendingDecodeTarget(builder: canonical, resume: $0, error: errorSink) }
            let decided = exchange.decode(incoming) { result in
                guard let target else { return }
                let status = deliver(result, to: target.builder, error: target.error)
                target.resume.pointee.resume?(target.resume.pointee.context, status)
            }
            guard let decided else {
                return resume == nil ? PRISM_ERROR_INTERNAL : PRISM_PENDING
            }
            return deliver(decided, to: canonical, error: errorSink)
        },
        encode_response: { state, response, client, errorSink in
            guard let exchange = ingressExchange(state), let response, let client else { return PRISM_ERROR_INTERNAL }
            do throws(PluginError) {
                let answer = try exchange.encodeResponse(status: response.pointee.status, body: response.pointee.body.buffer)
                writeAnswer(answer, to: HTTPBuilder(client))
                return PRISM_OK
            } catch {
                return error.report(to: errorSink)
            }
        },
        encode_event: { state, chunk, client, errorSink in
            guard let exchange = ingressExchange(state), let client else { return PRISM_ERROR_INTERNAL }
            var out: [UInt8] = []
            out.reserveCapacity(512) // one allocation for a typical event, none to grow
            do throws(PluginError) {
                try exchange.encodeEvent(chunk.buffer, into: &out)
                writeBytes(out, to: client)
                return PRISM_OK
            } catch {
                writeBytes(out, to: client)
                return error.report(to: errorSink)
            }
        },
        finish_stream: { state, usage, client, errorSink in
            guard let exchange = ingressExchange(state), let client else { return PRISM_ERROR_INTERNAL }
            var out: [UInt8] = []
            do throws(PluginError) {
                try exchange.finishStream(usage: usage.map { Usage($0.pointee) } ?? Usage(), into: &out)
                writeBytes(out, to: client)
                return PRISM_OK
            } catch {
                writeBytes(out, to: client)
                return error.report(to: errorSink)
            }
        },
        encode_error: { state, status, type, code, message, inStream, client in
            guard let exchange = ingressExchange(state), let client else { return }
            let answer = exchange.encodeError(
                IngressError(status: status, type: type.swiftString, code: code.swiftString, message: message.swiftString),
                inStream: inStream != 0)
            writeAnswer(answer, to: HTTPBuilder(client))
        },
        keep_alive: { state, client in
            guard let exchange = ingressExchange(state), let client else { return }
            var out: [UInt8] = []
            exchange.keepAlive(into: &out)
            writeBytes(out, to: client)
        },
        observe_native: { state, event, data, usage in
            guard let exchange = ingressExchange(state), let usage else { return }
            var current = Usage(usage.pointee)
            exchange.observeNative(event: event.swiftString, data: data.buffer, usage: &current)
            usage.pointee = current.abiValue
        },
        config_keys: cStringList(Registry.ingressTypes[slot]?.configurationKeys)))
    return table
}

extension Usage {
    init(_ raw: prism_usage) {
        self.init(inputTokens: raw.input_tokens, outputTokens: raw.output_tokens,
                  cachedInputTokens: raw.cached_input_tokens, cacheWriteTokens: raw.cache_write_tokens,
                  reasoningTokens: raw.reasoning_tokens)
    }
}
