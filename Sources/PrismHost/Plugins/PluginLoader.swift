import CFFI
import Logging
import PrismPluginABI
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A provider adapter, middleware or router found in a loaded plugin.
public struct LoadedComponent<Table>: @unchecked Sendable {
    public let name: String
    public let pluginID: String
    public let file: String
    /// The host's zero-padded copy of the plugin's vtable (valid until exit: plugins are never
    /// unloaded), so a field past an older plugin's table reads as NULL.
    package let table: UnsafePointer<Table>
    /// The configuration keys the component declared it reads (1.4 `config_keys`); nil when it
    /// declared none.
    public var configKeys: [String]? = nil
}

/// A 1.4 `config_keys` list: NULL-terminated C strings (at most 1,024 read).
private func declaredKeys(_ list: UnsafePointer<UnsafePointer<CChar>?>?) -> [String]? {
    guard let list else { return nil }
    var keys: [String] = []
    while keys.count < 1024, let key = list[keys.count] { keys.append(String(cString: key)) }
    return keys
}

/// What `prism-gateway plugins` shows for one file.
public struct LoadedPlugin: Sendable {
    public let id: String
    public let version: String
    public let file: String
    public let abiMajor: Int
    public let abiMinor: Int
    public let components: [(kind: String, name: String)]
}

public struct PluginRefusal: Error, Sendable {
    public let file: String
    public let reason: String
    /// The file claims a component name another file already has.
    public var isDuplicate = false
}

/// Every component available to configure, by kind and name.
public final class PluginRegistry: @unchecked Sendable {
    public private(set) var providers: [String: LoadedComponent<prism_provider_v1>] = [:]
    public private(set) var middleware: [String: LoadedComponent<prism_middleware_v1>] = [:]
    public private(set) var routers: [String: LoadedComponent<prism_router_v1>] = [:]
    /// Client dialects (1.5).
    public private(set) var ingresses: [String: LoadedComponent<prism_ingress_v1>] = [:]
    public private(set) var plugins: [LoadedPlugin] = []
    public private(set) var refusals: [PluginRefusal] = []

    /// Files refused because a component name was already taken, while they are still there:
    /// which of two files serves a name (and receives its config, API keys included) must never
    /// depend on how their names sort, so the gateway does not start with one.
    public var duplicates: [PluginRefusal] { refusals.filter { $0.isDuplicate && access($0.file, F_OK) == 0 } }
    /// Builds the per-identity host function tables (libffi closures).
    let functionTables = HostFunctionTables()
    let store = KeyValueStore()
    /// "prism.shared_state.v1": memory, or Redis when configured. Instances created after a
    /// reload that changed `redis:` get the new one.
    private let currentSharedState: Mutex<SharedStateService>
    /// Files loaded so far, by path, with what their file looked like then (plugins are never
    /// unloaded: a reload loads new files, and a changed file as a new version of its plugin).
    private var loadedFiles: [String: FileSignature] = [:]

    /// Enough of a file's `stat` to tell that it was replaced or rewritten in place.
    package struct FileSignature: Equatable {
        let device: UInt64, inode: UInt64, size: Int64, modifiedSeconds: Int, modifiedNanoseconds: Int
        package init(_ status: stat) {
            device = UInt64(status.st_dev)
            inode = UInt64(status.st_ino)
            size = Int64(status.st_size)
            modifiedSeconds = Int(status.st_mtim.tv_sec)
            modifiedNanoseconds = Int(status.st_mtim.tv_nsec)
        }
    }
    let logger: Logger
    /// Host tables already made, by identity: PLUGIN_API.md lets a plugin keep them until exit, so
    /// they are never freed, and a reload that configures the same instance again reuses its table
    /// instead of allocating new closures (memory stays flat across reloads).
    private let hostTables = Mutex<[HostTableKey: HostTablePointer]>([:])

    private struct HostTableKey: Hashable {
        let pluginID: String
        let label: String
        let sharedState: ObjectIdentifier
    }

    private struct HostTablePointer: @unchecked Sendable {
        let table: UnsafePointer<prism_host_api>
    }

    /// The admin API's client keys, offered to every instance as prism.client_keys.v1 (nil: the
    /// admin API is off).
    public let clientKeys: ClientKeyTable?

    public init(logger: Logger, redis: RedisSettings? = nil, clientKeys: ClientKeyTable? = nil) {
        self.logger = logger
        self.clientKeys = clientKeys
        currentSharedState = Mutex(SharedStateService(settings: redis, logger: logger))
    }

    package var sharedState: SharedStateService { currentSharedState.withLock { $0 } }

    /// Switches to a backend for `settings` when they differ from the current one; returns the
    /// backend it replaced (to retire once the new generation is in place, or to put back).
    @discardableResult
    package func useSharedState(_ settings: RedisSettings?) -> SharedStateService? {
        currentSharedState.withLock { current in
            guard current.settings != settings else { return nil }
            let old = current
            current = SharedStateService(settings: settings, logger: logger)
            return old
        }
    }

    /// Undoes `useSharedState` after a generation failed to build; the unused backend closes.
    package func restoreSharedState(_ previous: SharedStateService) {
        let unused = currentSharedState.withLock { current in
            defer { current = previous }
            return current
        }
        unused.retire(afterSeconds: 0)
    }

    /// The host table for one component instance: its log lines say `plugin-component/instance`,
    /// its key-value keys live in the plugin's namespace. `scope` (an organization) gives the
    /// instance a namespace of its own, so that two organizations' limits and caches never meet.
    package func hostTable(pluginID: String, component: String, instance: String, scope: String = "") -> UnsafePointer<prism_host_api> {
        var label = component == instance ? component : "\(component)/\(instance)"
        if !scope.isEmpty { label += "@" + scope }
        let sharedState = self.sharedState
        let key = HostTableKey(pluginID: pluginID, label: label, sharedState: ObjectIdentifier(sharedState))
        return hostTables.withLock { tables in
            if let made = tables[key] { return made.table }
            let namespace = scope.isEmpty ? pluginID : pluginID + "@" + scope
            let table = functionTables.makeTable(for: PluginIdentity(label: label, keyNamespace: namespace, logger: logger,
                                                                     store: store, sharedState: sharedState),
                                                 clientKeys: clientKeys.map { ($0, scope) })
            tables[key] = HostTablePointer(table: table)
            return table
        }
    }

    /// The file's bytes in a sealed memfd (kept open, like the plugin, for the life of the
    /// process), to dlopen through /proc/self/fd. Returns the descriptor.
    static func privateCopy(of path: String, refuse: (String) -> PluginRefusal) throws(PluginRefusal) -> Int32 {
        let source = open(path, O_RDONLY | O_CLOEXEC)
        guard source >= 0 else { throw refuse("cannot open: \(String(cString: strerror(errno)))") }
        defer { close(source) }
        let name = "prism-plugin:" + (path.split(separator: "/").last.map(String.init) ?? "plugin")
        let copy = prism_memfd_create(name)
        guard copy >= 0 else { throw refuse("memfd_create failed: \(String(cString: strerror(errno)))") }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = read(source, &buffer, buffer.count)
            if count == 0 { break }
            guard count > 0 else {
                close(copy)
                throw refuse("cannot read: \(String(cString: strerror(errno)))")
            }
            var written = 0
            while written < count {
                let result = buffer.withUnsafeBytes { write(copy, $0.baseAddress! + written, count - written) }
                guard result > 0 else {
                    close(copy)
                    throw refuse("cannot copy: \(String(cString: strerror(errno)))")
                }
                written += result
            }
        }
        // Sealed: nothing in the process can change the copy either.
        _ = prism_memfd_seal(copy)
        return copy
    }

    /// A vtable as the host reads it: the plugin's `size` bytes (it may be an older, shorter
    /// table), the rest zero, so no field past the plugin's table is ever read. Never freed, like
    /// the plugin.
    static func hostCopy<Table>(of vtable: UnsafeRawPointer, size: Int, as: Table.Type) -> UnsafePointer<Table> {
        let copy = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<Table>.size, alignment: MemoryLayout<Table>.alignment)
        copy.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<Table>.size)
        copy.copyMemory(from: vtable, byteCount: min(size, MemoryLayout<Table>.size))
        return UnsafePointer(copy.assumingMemoryBound(to: Table.self))
    }

    func recordRefusal(_ refusal: PluginRefusal) { refusals.append(refusal) }

    /// Loads every `*.so` in `directory` (sorted by name, not recursive). Refusals are logged and
    /// recorded; loading goes on with the rest.
    public func loadDirectory(_ directory: String) {
        guard let handle = opendir(directory) else {
            logger.warning("plugins directory \(directory) cannot be read: \(String(cString: strerror(errno)))")
            return
        }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name.hasSuffix(".so") { names.append(name) }
        }
        closedir(handle)
        for name in names.sorted() {
            let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            var replacing = false
            if let signature = loadedFiles[path] {
                var status = stat()
                guard stat(path, &status) == 0, FileSignature(status) != signature else { continue }
                // A changed file is a new version. The old one stays mapped (plugins are never
                // unloaded) for the generation that runs on it; the next generation uses the new.
                replacing = true
            }
            do {
                try load(path, replacing: replacing)
                if replacing { logger.info("plugin \(path) changed on disk: its new version is loaded") }
            } catch {
                if replacing {
                    // Keep serving the version that works; try the file again when it changes.
                    var status = stat()
                    if stat(path, &status) == 0 { loadedFiles[path] = FileSignature(status) }
                    logger.error("plugin \(path) changed on disk but its new version was refused (the loaded version stays): \(error.reason)")
                } else {
                    refusals.append(error)
                    logger.error("plugin refused: \(error.file): \(error.reason)")
                }
            }
        }
    }

    /// Loads one plugin file, or throws why it was refused. Nothing is registered unless the whole
    /// plugin is valid.
    /// `replacing`: the file was loaded before and changed; its components may take over the
    /// names the earlier version of this same file registered.
    public func load(_ path: String, replacing: Bool = false) throws(PluginRefusal) {
        func refuse(_ reason: String) -> PluginRefusal { PluginRefusal(file: path, reason: reason) }
        var status = stat()
        guard stat(path, &status) == 0 else { throw refuse("cannot stat: \(String(cString: strerror(errno)))") }
        guard status.st_mode & (S_IWGRP | S_IWOTH) == 0 else { throw refuse("file is group- or world-writable") }
        // The host maps a private in-memory copy, never the file itself: overwriting a loaded .so
        // in place (`cp new.so plugins/x.so`, what every author does while iterating) would
        // otherwise change the code under the running process and crash it.
        let copy = try PluginRegistry.privateCopy(of: path, refuse: refuse)
        if let reason = SwiftToolchainCheck.refusal(forPlugin: copy) {
            close(copy)
            throw refuse(reason)
        }
        // RTLD_NODELETE: a Swift plugin unmapped by dlclose leaves dangling runtime metadata, so
        // plugins stay mapped for the life of the process (and the host never calls dlclose).
        // The descriptor stays open once loaded: glibc finds an already loaded object by its path,
        // so a reused descriptor number must never name a second plugin.
        guard let library = dlopen("/proc/self/fd/\(copy)", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) else {
            close(copy)
            throw refuse("dlopen failed: \(dlerror().map { String(cString: $0) } ?? "unknown error")")
        }
        guard let symbol = dlsym(library, PRISM_PLUGIN_ENTRY_SYMBOL) else {
            throw refuse("missing entry symbol \(PRISM_PLUGIN_ENTRY_SYMBOL)")
        }
        let entry = unsafeBitCast(symbol, to: prism_plugin_entry_function.self)
        let fileName = String(path.split(separator: "/").last ?? Substring(path))
        let entryTable = functionTables.makeTable(for: PluginIdentity(
            label: fileName, keyNamespace: "file:" + fileName, logger: logger, store: store,
            sharedState: sharedState))
        var descriptorPointer: UnsafePointer<prism_plugin_descriptor>?
        let result = entry(entryTable, &descriptorPointer)
        guard result == PRISM_OK else { throw refuse("entry function returned status \(result)") }
        guard let descriptorPointer else { throw refuse("entry function returned no descriptor") }

        let minimumDescriptor = Int(PRISM_PLUGIN_DESCRIPTOR_SIZE_1_0)
        let size = Int(descriptorPointer.pointee.struct_size)
        guard size >= minimumDescriptor else {
            throw refuse("descriptor struct_size \(size) is smaller than \(minimumDescriptor)")
        }
        let descriptor = descriptorPointer.pointee
        guard Int32(descriptor.abi_major) == PRISM_ABI_MAJOR else {
            throw refuse("ABI major \(descriptor.abi_major) is not supported (host supports \(PRISM_ABI_MAJOR))")
        }
        guard Int32(descriptor.min_host_abi_minor) <= PRISM_ABI_MINOR else {
            throw refuse("needs host ABI minor \(descriptor.min_host_abi_minor) (host is \(PRISM_ABI_MAJOR).\(PRISM_ABI_MINOR))")
        }
        guard let idPointer = descriptor.id else { throw refuse("descriptor has no id") }
        let id = String(cString: idPointer)
        let version = descriptor.version.map { String(cString: $0) } ?? "unknown"
        guard descriptor.component_count == 0 || descriptor.components != nil else {
            throw refuse("descriptor lists \(descriptor.component_count) components but no component array")
        }

        var newProviders: [LoadedComponent<prism_provider_v1>] = []
        var newMiddleware: [LoadedComponent<prism_middleware_v1>] = []
        var newRouters: [LoadedComponent<prism_router_v1>] = []
        var newIngresses: [LoadedComponent<prism_ingress_v1>] = []
        var listed: [(kind: String, name: String)] = []
        for index in 0..<Int(descriptor.component_count) {
            let component = descriptor.components[index]
            let componentSize = Int(component.struct_size)
            guard componentSize >= Int(PRISM_COMPONENT_SIZE_1_0) else {
                throw refuse("component \(index): struct_size \(componentSize) is smaller than \(PRISM_COMPONENT_SIZE_1_0)")
            }
            guard let namePointer = component.name else { throw refuse("component \(index) has no name") }
            let name = String(cString: namePointer)
            guard let vtable = component.vtable else { throw refuse("\(kindName(component.kind)) \"\(name)\": vtable is NULL") }
            let vtableSize = Int(vtable.load(as: UInt32.self))
            func checkSize(_ minimum: Int) throws(PluginRefusal) {
                if vtableSize < minimum {
                    throw refuse("\(kindName(component.kind)) \"\(name)\": vtable struct_size \(vtableSize) is smaller than \(minimum)")
                }
            }
            func required(_ present: Bool, _ function: String) throws(PluginRefusal) {
                if !present { throw refuse("\(kindName(component.kind)) \"\(name)\": required function \(function) is NULL") }
            }
            func duplicate(_ registered: String?, inThisFile: Bool) throws(PluginRefusal) {
                // The earlier version of a file being replaced does not count against it.
                let existing = inThisFile ? path : (replacing && registered == path ? nil : registered)
                if let existing {
                    var refusal = refuse("duplicate \(kindName(component.kind)) component \"\(name)\" (already loaded from \(existing))")
                    refusal.isDuplicate = true
                    throw refusal
                }
            }
            switch component.kind {
            case PRISM_COMPONENT_PROVIDER:
                try checkSize(Int(PRISM_PROVIDER_V1_SIZE_1_0))
                let table = PluginRegistry.hostCopy(of: vtable, size: vtableSize, as: prism_provider_v1.self)
                let functions = table.pointee
                try required(functions.instance_new != nil, "instance_new")
                try required(functions.instance_destroy != nil, "instance_destroy")
                try required(functions.exchange_new != nil, "exchange_new")
                try required(functions.exchange_destroy != nil, "exchange_destroy")
                try required(functions.build_request != nil, "build_request")
                try required(functions.translate_response != nil, "translate_response")
                try required(functions.translate_event != nil, "translate_event")
                try required(functions.finish_stream != nil, "finish_stream")
                try duplicate(providers[name]?.file, inThisFile: newProviders.contains { $0.name == name })
                newProviders.append(LoadedComponent(name: name, pluginID: id, file: path, table: table,
                                                    configKeys: declaredKeys(functions.config_keys)))
            case PRISM_COMPONENT_MIDDLEWARE:
                // The 1.0 table ends before on_response (added in 1.2): a 1.0 middleware loads.
                try checkSize(Int(PRISM_MIDDLEWARE_V1_SIZE_1_0))
                let table = PluginRegistry.hostCopy(of: vtable, size: vtableSize, as: prism_middleware_v1.self)
                try required(table.pointee.instance_new != nil, "instance_new")
                try required(table.pointee.instance_destroy != nil, "instance_destroy")
                try required(table.pointee.on_request != nil, "on_request")
                try duplicate(middleware[name]?.file, inThisFile: newMiddleware.contains { $0.name == name })
                newMiddleware.append(LoadedComponent(name: name, pluginID: id, file: path, table: table,
                                                     configKeys: declaredKeys(table.pointee.config_keys)))
            case PRISM_COMPONENT_ROUTER:
                // The 1.0 table ends before parallel_attempts (added in 1.1).
                try checkSize(Int(PRISM_ROUTER_V1_SIZE_1_0))
                let table = PluginRegistry.hostCopy(of: vtable, size: vtableSize, as: prism_router_v1.self)
                try required(table.pointee.instance_new != nil, "instance_new")
                try required(table.pointee.instance_destroy != nil, "instance_destroy")
                try required(table.pointee.select != nil, "select")
                try duplicate(routers[name]?.file, inThisFile: newRouters.contains { $0.name == name })
                newRouters.append(LoadedComponent(name: name, pluginID: id, file: path, table: table,
                                                  configKeys: declaredKeys(table.pointee.config_keys)))
            case PRISM_COMPONENT_INGRESS:
                try checkSize(Int(PRISM_INGRESS_V1_SIZE_1_5))
                let table = PluginRegistry.hostCopy(of: vtable, size: vtableSize, as: prism_ingress_v1.self)
                let functions = table.pointee
                try required(functions.instance_new != nil, "instance_new")
                try required(functions.instance_destroy != nil, "instance_destroy")
                try required(functions.routes != nil, "routes")
                try required(functions.exchange_new != nil, "exchange_new")
                try required(functions.exchange_destroy != nil, "exchange_destroy")
                try required(functions.decode_request != nil, "decode_request")
                try required(functions.encode_response != nil, "encode_response")
                try required(functions.encode_event != nil, "encode_event")
                try required(functions.finish_stream != nil, "finish_stream")
                try required(functions.encode_error != nil, "encode_error")
                try duplicate(ingresses[name]?.file, inThisFile: newIngresses.contains { $0.name == name })
                newIngresses.append(LoadedComponent(name: name, pluginID: id, file: path, table: table,
                                                    configKeys: declaredKeys(functions.config_keys)))
            default:
                // A kind from a newer ABI minor: skip it, keep the rest of the plugin.
                logger.warning("plugin \(path): component \"\(name)\" has unknown kind \(component.kind); skipped")
                continue
            }
            listed.append((kind: kindName(component.kind), name: name))
        }
        if replacing {
            // Names the earlier version had and this one dropped are gone with it.
            providers = providers.filter { $0.value.file != path }
            middleware = middleware.filter { $0.value.file != path }
            routers = routers.filter { $0.value.file != path }
            ingresses = ingresses.filter { $0.value.file != path }
            plugins.removeAll { $0.file == path }
        }
        for component in newProviders { providers[component.name] = component }
        for component in newMiddleware { middleware[component.name] = component }
        for component in newRouters { routers[component.name] = component }
        for component in newIngresses { ingresses[component.name] = component }
        plugins.append(LoadedPlugin(id: id, version: version, file: path, abiMajor: Int(descriptor.abi_major),
                                    abiMinor: Int(descriptor.abi_minor), components: listed))
        loadedFiles[path] = FileSignature(status)
        logger.debug("plugin loaded: \(id) \(version) from \(path)")
    }
}

func kindName(_ kind: prism_component_kind) -> String {
    switch kind {
    case PRISM_COMPONENT_PROVIDER: return "provider"
    case PRISM_COMPONENT_MIDDLEWARE: return "middleware"
    case PRISM_COMPONENT_ROUTER: return "router"
    case PRISM_COMPONENT_INGRESS: return "ingress"
    default: return "kind-\(kind)"
    }
}
