import PrismPluginABI
import PrismWire

/// The winning stream's translation, from the upstream's bytes to the client's: cut into events
/// (SSE, or NDJSON lines; raw framing goes whole to translate_chunk), through the provider
/// plugin into `collector`, which frames each chunk as OpenAI's `data:` event or, on an ingress
/// route, in the client's dialect. It holds no socket and no timer: the server writes what
/// `collector.pending` holds, paces the transfer and ends the request.
final class StreamRelay {
    let exchange: ProviderExchange
    let framing: prism_framing
    let collector: StreamCollector
    /// The client's dialect (nil: OpenAI's), and what it said when it could not encode a chunk.
    let dialect: (exchange: IngressExchange, encodeError: ErrorCapture)?
    private var framer: StreamEventFramer

    /// Why the stream cannot go on: the plugin's own error when it set one, else `otherwise`.
    struct Failure {
        let error: ErrorCapture
        let otherwise: String
    }

    init(exchange: ProviderExchange, framing: prism_framing, collector: StreamCollector,
         dialect: (exchange: IngressExchange, encodeError: ErrorCapture)?)
    {
        self.exchange = exchange
        self.framing = framing
        self.collector = collector
        self.dialect = dialect
        framer = StreamEventFramer(mode: framing == PRISM_FRAMING_NDJSON ? .lines : .serverSentEvents)
    }

    /// Translates upstream bytes into `collector.pending`. What was translated before a failure
    /// stays pending (the client gets it before the error event).
    func feed(_ bytes: [UInt8]) -> Failure? {
        let error = ErrorCapture()
        var status = PRISM_OK
        if framing == PRISM_FRAMING_RAW {
            status = bytes.withUnsafeBytes { exchange.translateChunk($0, into: collector, error: error) }
        } else {
            let exchange = self.exchange, collector = self.collector
            do {
                try framer.feed(bytes) { event in
                    guard status == PRISM_OK else { return }
                    status = exchange.translateEvent(event, into: collector, error: error)
                }
            } catch {
                status = PRISM_ERROR_UPSTREAM
            }
        }
        if let dialect, collector.encoderStatus != PRISM_OK {
            return Failure(error: dialect.encodeError, otherwise: "the stream could not be written in the client's dialect")
        }
        return status == PRISM_OK ? nil : Failure(error: error, otherwise: "the upstream stream could not be translated")
    }

    /// The upstream ended: its last event and finish_stream go into `collector.pending`.
    func finish() -> Failure? {
        let error = ErrorCapture()
        var status = PRISM_OK
        if framing != PRISM_FRAMING_RAW {
            let exchange = self.exchange, collector = self.collector
            try? framer.feed(nil) { event in
                if status == PRISM_OK { status = exchange.translateEvent(event, into: collector, error: error) }
            }
        }
        if status == PRISM_OK { status = exchange.finishStream(into: collector, error: error) }
        guard status == PRISM_OK else { return Failure(error: error, otherwise: "the upstream stream ended badly") }
        if let dialect, collector.encoderStatus != PRISM_OK {
            return Failure(error: dialect.encodeError, otherwise: "the stream could not be written in the client's dialect")
        }
        return nil
    }

    /// The bytes that close a finished stream, after everything pending: the dialect's (told the
    /// usage), or `data: [DONE]`.
    func closing() -> (bytes: [UInt8], failure: Failure?) {
        guard let dialect else { return (ServerSentEventWriter.done, nil) }
        let error = ErrorCapture()
        var bytes: [UInt8] = []
        guard dialect.exchange.finishStream(usage: collector.usage, into: &bytes, error: error) == PRISM_OK else {
            return ([], Failure(error: error, otherwise: "the client's dialect could not end the stream"))
        }
        return (bytes, nil)
    }

    /// The bytes that end a started stream with an error: the dialect's error event, or OpenAI's
    /// error event and `[DONE]`. `cutEvent`: a pass-through stream stopped inside an event, which
    /// is ended first (a client then reads a broken event, not one run together with the error).
    static func errorEnding(dialect: IngressExchange?, cutEvent: Bool, type: String, code: String, message: String,
                            status: Int) -> [UInt8]
    {
        if let dialect {
            var bytes: [UInt8] = cutEvent ? [0x0A, 0x0A] : []
            bytes += dialect.encodeError(status: status, type: type, code: code, message: message, inStream: true).body
            return bytes
        }
        var frame: [UInt8] = []
        OpenAIErrorBody.make(message: message, type: type, code: code).withUnsafeBytes {
            ServerSentEventWriter.frame($0, into: &frame)
        }
        frame.append(contentsOf: ServerSentEventWriter.done)
        return frame
    }
}
