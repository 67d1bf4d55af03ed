import PrismPluginABI
import PrismWire

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

    /// An instance the caller made from `table` (the chain's unit tests, with tables of their own).
    package init(name: String, table: UnsafePointer<prism_middleware_v1>, instance: UnsafeMutableRawPointer) {
        self.name = name
        self.table = table
        self.instance = instance
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
