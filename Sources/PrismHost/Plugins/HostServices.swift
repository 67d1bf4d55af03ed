import CFFI
import Logging
import PrismPluginABI
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Who a host function table acts for: a plugin (at entry) or one component instance.
class PluginIdentity: @unchecked Sendable {
    /// Shown in log lines: "openai" or "openai/ollama" (plugin component / instance).
    let label: String
    /// Prefix for key-value keys: one namespace per plugin id, shared by its instances.
    let keyNamespace: String
    private let keyNamespaceBytes: [UInt8]
    let logger: Logger
    let store: KeyValueStore
    let sharedState: SharedStateService

    init(label: String, keyNamespace: String, logger: Logger, store: KeyValueStore, sharedState: SharedStateService) {
        self.label = label
        self.keyNamespace = keyNamespace
        keyNamespaceBytes = Array(keyNamespace.utf8)
        self.logger = logger
        self.store = store
        self.sharedState = sharedState
    }

    /// Metric names this identity already had refused (each is logged once).
    private let refusedMetrics = Mutex<Set<String>>([])

    func firstRefusal(of metric: String) -> Bool {
        refusedMetrics.withLock { $0.insert(metric).inserted }
    }

    func namespaced(_ key: prism_string) -> String { keyNamespace + "\u{1F}" + key.hostString }

    /// "<plugin id>:<key>" for the shared state, built in one allocation (on the request path).
    func scopedKey(_ key: prism_string) -> String {
        let namespace = keyNamespaceBytes
        let keyBytes = key.hostBuffer
        return String(unsafeUninitializedCapacity: namespace.count + 1 + keyBytes.count) { buffer in
            _ = buffer.initialize(from: namespace)
            buffer[namespace.count] = UInt8(ascii: ":")
            _ = UnsafeMutableBufferPointer(rebasing: buffer[(namespace.count + 1)...]).initialize(from: keyBytes)
            return namespace.count + 1 + keyBytes.count
        }
    }
}

/// Builds `prism_host_api` tables whose functions are libffi closures bound to one identity.
///
/// The ABI's host functions take no context argument, so a plugin cannot pass (or forge) whom it
/// acts for: each table's `log` and key-value functions are distinct executable trampolines made
/// by `ffi_prep_closure_loc`, each carrying its identity as closure user data. Tables and
/// closures live until the process exits (plugins may keep the pointer), as plugins never unload.
final class HostFunctionTables: @unchecked Sendable {
    // Call interfaces, one per host function signature. libffi keeps pointers to them inside every
    // closure, so they are allocated once and never freed.
    private let logInterface: UnsafeMutablePointer<ffi_cif>
    private let logEnabledInterface: UnsafeMutablePointer<ffi_cif>
    private let getServiceInterface: UnsafeMutablePointer<ffi_cif>
    /// Also prism.client_keys.v1's lookup: the same signature (Plugins/ClientKeys.swift).
    let keyGetInterface: UnsafeMutablePointer<ffi_cif>
    private let keySetInterface: UnsafeMutablePointer<ffi_cif>
    private let keyRemoveInterface: UnsafeMutablePointer<ffi_cif>
    private let keyIncrementInterface: UnsafeMutablePointer<ffi_cif>
    // prism.shared_state.v1 (SharedStateTables.swift).
    let stateLookupInterface: UnsafeMutablePointer<ffi_cif>
    let stateSetInterface: UnsafeMutablePointer<ffi_cif>
    let stateTakeInterface: UnsafeMutablePointer<ffi_cif>
    let stateAdjustInterface: UnsafeMutablePointer<ffi_cif>
    let stateCapacityInterface: UnsafeMutablePointer<ffi_cif>
    // prism.metrics.v1 (PluginMetricsTables.swift).
    let metricCountInterface: UnsafeMutablePointer<ffi_cif>
    let metricValueInterface: UnsafeMutablePointer<ffi_cif>

    init() {
        // prism_string and prism_bytes share one layout: { pointer, size_t }, passed by value.
        let elements = UnsafeMutablePointer<UnsafeMutablePointer<ffi_type>?>.allocate(capacity: 3)
        elements[0] = prism_ffi_type_pointer()
        elements[1] = prism_ffi_type_size_t()
        elements[2] = nil
        let string = UnsafeMutablePointer<ffi_type>.allocate(capacity: 1)
        string.initialize(to: ffi_type())
        string.pointee.type = UInt16(FFI_TYPE_STRUCT)
        string.pointee.elements = elements
        logInterface = HostFunctionTables.prepare(returns: prism_ffi_type_void(), [prism_ffi_type_sint32(), string])
        logEnabledInterface = HostFunctionTables.prepare(returns: prism_ffi_type_sint32(), [prism_ffi_type_sint32()])
        getServiceInterface = HostFunctionTables.prepare(returns: prism_ffi_type_pointer(), [prism_ffi_type_pointer()])
        keyGetInterface = HostFunctionTables.prepare(returns: prism_ffi_type_sint32(), [string, prism_ffi_type_pointer()])
        keySetInterface = HostFunctionTables.prepare(returns: prism_ffi_type_sint32(),
                                                     [string, string, prism_ffi_type_uint64()])
        keyRemoveInterface = HostFunctionTables.prepare(returns: prism_ffi_type_sint32(), [string])
        keyIncrementInterface = HostFunctionTables.prepare(
            returns: prism_ffi_type_sint32(),
            [string, prism_ffi_type_sint64(), prism_ffi_type_uint64(), prism_ffi_type_pointer()])
        let pointer: UnsafeMutablePointer<ffi_type> = prism_ffi_type_pointer()
        stateLookupInterface = HostFunctionTables.prepare(returns: prism_ffi_type_void(), [string, pointer, pointer])
        stateSetInterface = HostFunctionTables.prepare(returns: prism_ffi_type_void(),
                                                       [string, string, prism_ffi_type_uint64(), pointer, pointer])
        stateTakeInterface = HostFunctionTables.prepare(returns: prism_ffi_type_void(),
                                                        [pointer, prism_ffi_type_size_t(), pointer, pointer])
        stateAdjustInterface = HostFunctionTables.prepare(
            returns: prism_ffi_type_void(),
            [string, prism_ffi_type_uint64(), prism_ffi_type_uint64(), prism_ffi_type_sint64()])
        stateCapacityInterface = HostFunctionTables.prepare(returns: prism_ffi_type_void(), [prism_ffi_type_uint64()])
        metricCountInterface = HostFunctionTables.prepare(
            returns: prism_ffi_type_sint32(), [string, pointer, prism_ffi_type_size_t(), prism_ffi_type_uint64()])
        metricValueInterface = HostFunctionTables.prepare(
            returns: prism_ffi_type_sint32(), [string, pointer, prism_ffi_type_size_t(), prism_ffi_type_double()])
    }

    private static func prepare(returns: UnsafeMutablePointer<ffi_type>,
                                _ arguments: [UnsafeMutablePointer<ffi_type>]) -> UnsafeMutablePointer<ffi_cif>
    {
        let list = UnsafeMutablePointer<UnsafeMutablePointer<ffi_type>?>.allocate(capacity: arguments.count)
        for (index, argument) in arguments.enumerated() { list[index] = argument }
        let interface = UnsafeMutablePointer<ffi_cif>.allocate(capacity: 1)
        interface.initialize(to: ffi_cif())
        let status = ffi_prep_cif(interface, FFI_DEFAULT_ABI, UInt32(arguments.count), returns, list)
        precondition(status == FFI_OK, "libffi could not prepare a host function interface")
        return interface
    }

    typealias Trampoline = @convention(c) (UnsafeMutablePointer<ffi_cif>?, UnsafeMutableRawPointer?,
                                           UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutableRawPointer?) -> Void

    /// One closure: a fresh C function pointer that calls `trampoline` with `identity`.
    func bind(_ interface: UnsafeMutablePointer<ffi_cif>, _ identity: PluginIdentity,
                      _ trampoline: Trampoline) -> UnsafeMutableRawPointer
    {
        var code: UnsafeMutableRawPointer?
        guard let closure = ffi_closure_alloc(MemoryLayout<ffi_closure>.size, &code), let code else {
            fatalError("libffi could not allocate a closure")
        }
        let userData = Unmanaged.passRetained(identity).toOpaque() // released never: lives with the plugin
        let status = ffi_prep_closure_loc(closure.assumingMemoryBound(to: ffi_closure.self), interface,
                                          trampoline, userData, code)
        precondition(status == FFI_OK, "libffi could not prepare a closure")
        return code
    }

    /// A new host function table acting for `identity` (and, with `clientKeys`, offering that
    /// organization's view of the admin API's keys). Safe from any thread: it reads only the
    /// immutable call interfaces, and libffi's closure allocation is thread-safe.
    func makeTable(for identity: PluginIdentity,
                   clientKeys: (table: ClientKeyTable, organization: String)? = nil) -> UnsafePointer<prism_host_api>
    {
        let keyValue = UnsafeMutablePointer<prism_key_value_service_v1>.allocate(capacity: 1)
        keyValue.initialize(to: prism_key_value_service_v1(
            struct_size: UInt32(MemoryLayout<prism_key_value_service_v1>.size),
            get: unsafeBitCast(bind(keyGetInterface, identity, keyGetTrampoline), to: type(of: keyValue.pointee.get)),
            set: unsafeBitCast(bind(keySetInterface, identity, keySetTrampoline), to: type(of: keyValue.pointee.set)),
            remove: unsafeBitCast(bind(keyRemoveInterface, identity, keyRemoveTrampoline),
                                  to: type(of: keyValue.pointee.remove)),
            increment: unsafeBitCast(bind(keyIncrementInterface, identity, keyIncrementTrampoline),
                                     to: type(of: keyValue.pointee.increment))))
        var clientKeysTable: UnsafeRawPointer?
        if let clientKeys {
            let table = UnsafeMutablePointer<prism_client_keys_service_v1>.allocate(capacity: 1)
            let owner = ClientKeysIdentity(identity, table: clientKeys.table, organization: clientKeys.organization)
            table.initialize(to: prism_client_keys_service_v1(
                struct_size: UInt32(MemoryLayout<prism_client_keys_service_v1>.size),
                lookup: unsafeBitCast(bind(keyGetInterface, owner, clientKeysLookupTrampoline),
                                      to: type(of: table.pointee.lookup))))
            clientKeysTable = UnsafeRawPointer(table)
        }
        let services = ServiceDirectory(keyValue: UnsafeRawPointer(keyValue),
                                        sharedState: UnsafeRawPointer(makeSharedStateTable(for: identity)),
                                        metrics: UnsafeRawPointer(makeMetricsTable(for: identity)),
                                        clientKeys: clientKeysTable)
        let api = UnsafeMutablePointer<prism_host_api>.allocate(capacity: 1)
        api.initialize(to: prism_host_api(
            struct_size: UInt32(MemoryLayout<prism_host_api>.size),
            abi_major: UInt16(PRISM_ABI_MAJOR), abi_minor: UInt16(PRISM_ABI_MINOR),
            log: unsafeBitCast(bind(logInterface, identity, logTrampoline), to: type(of: api.pointee.log)),
            log_enabled: unsafeBitCast(bind(logEnabledInterface, identity, logEnabledTrampoline),
                                       to: type(of: api.pointee.log_enabled)),
            monotonic_nanoseconds: { monotonicNanoseconds() },
            wall_clock_milliseconds: { wallClockMilliseconds() },
            get_service: unsafeBitCast(bind(getServiceInterface, ServiceIdentity(identity, services),
                                            getServiceTrampoline),
                                       to: type(of: api.pointee.get_service))))
        return UnsafePointer(api)
    }
}

/// The services one identity can look up.
struct ServiceDirectory {
    let keyValue: UnsafeRawPointer
    let sharedState: UnsafeRawPointer
    let metrics: UnsafeRawPointer
    /// nil: the admin API is off.
    let clientKeys: UnsafeRawPointer?
}

/// An identity that also carries its service directory (for get_service).
final class ServiceIdentity: PluginIdentity, @unchecked Sendable {
    let services: ServiceDirectory
    init(_ identity: PluginIdentity, _ services: ServiceDirectory) {
        self.services = services
        super.init(label: identity.label, keyNamespace: identity.keyNamespace, logger: identity.logger,
                   store: identity.store, sharedState: identity.sharedState)
    }
}

extension prism_string {
    package var hostString: String {
        guard let data, length > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
    }
}

extension prism_bytes {
    var hostBuffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : length) }
}

// MARK: Trampolines: decode libffi's argument array, act for the bound identity.

@inline(__always)
func identity(_ userData: UnsafeMutableRawPointer?) -> PluginIdentity {
    Unmanaged<PluginIdentity>.fromOpaque(userData!).takeUnretainedValue()
}

@inline(__always)
func argument<T>(_ arguments: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, _ index: Int, _: T.Type) -> T {
    arguments![index]!.assumingMemoryBound(to: T.self).pointee
}

@inline(__always)
func returnStatus(_ result: UnsafeMutableRawPointer?, _ status: prism_status) {
    // libffi widens integer results narrower than a register to ffi_arg.
    result?.assumingMemoryBound(to: Int.self).pointee = Int(status)
}

private func logLevel(_ level: prism_log_level) -> Logger.Level {
    switch level {
    case PRISM_LOG_DEBUG: return .debug
    case PRISM_LOG_INFO: return .info
    case PRISM_LOG_WARN: return .warning
    default: return .error
    }
}

private let logTrampoline: HostFunctionTables.Trampoline = { _, _, arguments, userData in
    let owner = identity(userData)
    let level = logLevel(argument(arguments, 0, Int32.self))
    let message = argument(arguments, 1, prism_string.self).hostString
    owner.logger.log(level: level, "[\(owner.label)] \(message)")
}

private let logEnabledTrampoline: HostFunctionTables.Trampoline = { _, result, arguments, userData in
    let owner = identity(userData)
    let level = logLevel(argument(arguments, 0, Int32.self))
    returnStatus(result, owner.logger.logLevel <= level ? 1 : 0)
}

private let getServiceTrampoline: HostFunctionTables.Trampoline = { _, result, arguments, userData in
    let owner = Unmanaged<ServiceIdentity>.fromOpaque(userData!).takeUnretainedValue()
    var service: UnsafeRawPointer?
    if let name = argument(arguments, 0, UnsafePointer<CChar>?.self) {
        switch String(cString: name) {
        case PRISM_KEY_VALUE_SERVICE_V1: service = owner.services.keyValue
        case PRISM_SHARED_STATE_SERVICE_V1: service = owner.services.sharedState
        case PRISM_METRICS_SERVICE_V1: service = owner.services.metrics
        case PRISM_CLIENT_KEYS_SERVICE_V1: service = owner.services.clientKeys
        default: service = nil
        }
    }
    result?.assumingMemoryBound(to: UnsafeRawPointer?.self).pointee = service
}

private let keyGetTrampoline: HostFunctionTables.Trampoline = { _, result, arguments, userData in
    let owner = identity(userData)
    let key = owner.namespaced(argument(arguments, 0, prism_string.self))
    returnFound(owner.store.get(key), to: argument(arguments, 1, UnsafePointer<prism_bytes_sink>?.self), result)
}

/// A look-up's answer: the value written to the plugin's sink and PRISM_OK, or PRISM_KEY_NOT_FOUND.
func returnFound(_ value: [UInt8]?, to sink: UnsafePointer<prism_bytes_sink>?, _ result: UnsafeMutableRawPointer?) {
    guard let sink, let value else { return returnStatus(result, PRISM_KEY_NOT_FOUND) }
    value.withUnsafeBufferPointer { buffer in
        sink.pointee.write?(sink.pointee.context, prism_bytes(data: buffer.baseAddress, length: buffer.count))
    }
    returnStatus(result, PRISM_OK)
}

private let keySetTrampoline: HostFunctionTables.Trampoline = { _, result, arguments, userData in
    let owner = identity(userData)
    let key = owner.namespaced(argument(arguments, 0, prism_string.self))
    let value = Array(argument(arguments, 1, prism_bytes.self).hostBuffer)
    owner.store.set(key, value, ttlMilliseconds: argument(arguments, 2, UInt64.self))
    returnStatus(result, PRISM_OK)
}

private let keyRemoveTrampoline: HostFunctionTables.Trampoline = { _, result, arguments, userData in
    let owner = identity(userData)
    owner.store.remove(owner.namespaced(argument(arguments, 0, prism_string.self)))
    returnStatus(result, PRISM_OK)
}

private let keyIncrementTrampoline: HostFunctionTables.Trampoline = { _, result, arguments, userData in
    let owner = identity(userData)
    let key = owner.namespaced(argument(arguments, 0, prism_string.self))
    let value = owner.store.increment(key, by: argument(arguments, 1, Int64.self),
                                      ttlMilliseconds: argument(arguments, 2, UInt64.self))
    if let out = argument(arguments, 3, UnsafeMutablePointer<Int64>?.self) { out.pointee = value }
    returnStatus(result, PRISM_OK)
}
