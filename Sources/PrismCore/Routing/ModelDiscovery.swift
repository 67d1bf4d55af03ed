import Dispatch
import Logging
import PrismPluginABI
import PrismWire

/// Learns the models of self-hosted servers (`type: ollama | vllm`) from their `/v1/models`, at
/// startup, through the provider plugin (api "models.list") and the normal transport.
enum ModelDiscovery {
    static let timeoutMilliseconds = 3000

    static func discover(providers: [ProviderInstance], catalog: ModelCatalog, transport: CurlTransport, logger: Logger) {
        for provider in providers {
            guard let exchange = provider.newExchange() else { continue }
            let request = RequestView(api: "models.list", method: "GET", path: "/v1/models", headers: [], body: [],
                                      model: "", requestID: "model-discovery")
            let upstream = MessageBuilder()
            upstream.method = "GET"
            let error = ErrorCapture()
            let (status, _) = exchange.buildRequest(request, into: upstream, error: error)
            guard status == PRISM_OK else {
                logger.warning("provider '\(provider.settings.name)': model discovery not possible: \(error.message)")
                continue
            }
            let receiver = BlockingReceiver()
            transport.start(Transfer(method: upstream.method, url: upstream.url, headers: upstream.headers,
                                     body: upstream.body, timeoutMilliseconds: timeoutMilliseconds, streaming: false,
                                     gate: nil, delegate: receiver))
            receiver.done.wait()
            guard receiver.failure == nil, (200..<300).contains(receiver.status) else {
                let reason = receiver.failure?.message ?? "HTTP \(receiver.status)"
                logger.warning("provider '\(provider.settings.name)': model discovery failed (\(reason)); using configured models only")
                continue
            }
            let client = MessageBuilder()
            let translated = receiver.body.withUnsafeBufferPointer { body in
                var response = prism_response(struct_size: UInt32(MemoryLayout<prism_response>.size), status: UInt32(receiver.status),
                                              headers: nil, header_count: 0,
                                              body: prism_bytes(data: body.baseAddress, length: body.count))
                return exchange.translateResponse(&response, into: client, error: error).status
            }
            guard translated == PRISM_OK, let list = try? JSONValue.parse(client.body) else { continue }
            var found = 0
            for entry in list["data"]?.arrayValue ?? [] {
                if let id = entry["id"]?.stringValue {
                    catalog.add(id, provider)
                    found += 1
                }
            }
            logger.info("provider '\(provider.settings.name)': discovered \(found) model(s)")
        }
    }
}

/// Collects a whole response for a caller that waits (startup only, never on an event loop).
final class BlockingReceiver: TransferDelegate, @unchecked Sendable {
    let done = DispatchSemaphore(value: 0)
    var status = 0
    var body: [UInt8] = []
    var failure: TransportFailure?

    func transferReceivedHead(status: Int, headers: [(String, String)]) { self.status = status }
    func transferReceived(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if body.count < 16 << 20 { body.append(contentsOf: bytes) }
        return true
    }
    func transferCompleted(_ failure: TransportFailure?) {
        self.failure = failure
        done.signal()
    }
}
