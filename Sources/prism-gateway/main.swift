import Logging
import PrismCore
import PrismWire

#if canImport(Glibc)
import Glibc
#endif

// prism-gateway [serve] [--config FILE] [--plugins-dir DIR] [--port N] [--host H]
// prism-gateway validate --config FILE
// prism-gateway plugins [--plugins-dir DIR] [--config FILE]
// prism-gateway plugin-test FILE.so [--component NAME] [--config JSON] [--upstream DIR] [--model NAME]

/// Writes to standard error (one write call, so concurrent lines never interleave).
func printError(_ text: String) {
    var text = text
    text.withUTF8 { utf8 in _ = write(2, utf8.baseAddress, utf8.count) }
}

struct Options {
    var command = "serve"
    var configPath: String?
    var pluginsDirectory: String?
    var port: Int?
    var host: String?
}

func usage() -> Never {
    printError("""
    usage: prism-gateway [serve] [--config FILE] [--plugins-dir DIR] [--port N] [--host H]
           prism-gateway validate --config FILE
           prism-gateway plugins [--plugins-dir DIR] [--config FILE]
           prism-gateway plugin-test FILE.so [--component NAME] [--config JSON] [--upstream DIR]
                                     [--model NAME] [--threads N] [--iterations N]

    """)
    exit(2)
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst()
    if let first = arguments.first, !first.hasPrefix("-") {
        guard ["serve", "validate", "plugins"].contains(first) else { usage() }
        options.command = first
        arguments = arguments.dropFirst()
    }
    while let argument = arguments.popFirst() {
        var name = argument
        var value: String?
        if let equals = argument.firstIndex(of: "=") {
            name = String(argument[..<equals])
            value = String(argument[argument.index(after: equals)...])
        }
        func next() -> String {
            if let value { return value }
            guard let following = arguments.popFirst() else { usage() }
            return following
        }
        switch name {
        case "--config", "-c": options.configPath = next()
        case "--plugins-dir": options.pluginsDirectory = next()
        case "--port": options.port = Int(next()) ?? { usage() }()
        case "--host": options.host = next()
        case "--help", "-h": usage()
        default:
            printError("unknown option \(argument)\n")
            usage()
        }
    }
    return options
}

/// `plugins/` beside the executable.
func defaultPluginsDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard count > 0 else { return "plugins" }
    let path = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    return directory + "/plugins"
}

/// The config file the options name: --config, else $PRISM_CONFIG, else ./config.yaml if present
/// (nil: the embedded default).
func configPath(_ options: Options) -> String? {
    var path = options.configPath
    if path == nil, let fromEnvironment = getenv("PRISM_CONFIG") { path = String(cString: fromEnvironment) }
    if path == nil, ConfigFile.exists("config.yaml") { path = "config.yaml" }
    return path
}

/// Loads the configuration named by the options (or the defaults), printing diagnostics.
func loadConfiguration(_ options: Options) -> GatewayConfiguration? {
    let path = configPath(options)
    let text: String
    let name: String
    if let path {
        switch ConfigFile.read(path) {
        case let .success(contents): text = contents
        case let .failure(error):
            printError("\(error)\n")
            return nil
        }
        name = path
    } else {
        text = DefaultConfiguration.text
        name = "<embedded default>"
    }
    var loader = ConfigLoader()
    do {
        let (configuration, warnings) = try loader.load(text: text, file: name)
        for warning in warnings { printError("\(warning)\n") }
        return configuration
    } catch {
        printError("\(error)\n")
        return nil
    }
}

/// `plugin-test`: a provider adapter through the conformance cases; exit 0 when all pass.
func pluginTest(_ arguments: [String]) -> Never {
    var arguments = arguments[...]
    guard let file = arguments.popFirst(), !file.hasPrefix("-") else { usage() }
    var test = PluginConformance(file: file)
    while let name = arguments.popFirst() {
        guard let value = arguments.popFirst() else { usage() }
        switch name {
        case "--component": test.component = value
        case "--model": test.model = value
        case "--upstream": test.upstream = value
        case "--threads": test.threads = max(1, Int(value) ?? { usage() }())
        case "--iterations": test.iterations = max(1, Int(value) ?? { usage() }())
        case "--config":
            guard case let .object(members)? = try? JSONValue.parse(value) else {
                printError("--config takes a JSON object: the provider's settings, e.g. '{\"base_url\": \"http://h/v1\"}'\n")
                exit(2)
            }
            test.configuration = members
        default:
            printError("unknown option \(name)\n")
            usage()
        }
    }
    var total = 0, failed = 0
    let passed = test.run { result in
        total += 1
        if !result.passed { failed += 1 }
        print("\(result.passed ? "ok  " : "FAIL") \(result.name): \(result.detail)")
    }
    print("plugin-test \(file): \(total - failed) of \(total) cases passed")
    exit(passed ? 0 : 1)
}

if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "plugin-test" {
    LoggingSystem.bootstrap { label in LineLogHandler(label: "prism", level: .error) }
    pluginTest(Array(CommandLine.arguments.dropFirst(2)))
}

let options = parseOptions()
LoggingSystem.bootstrap { label in LineLogHandler(label: "prism", level: .info) }

switch options.command {
case "validate":
    guard let configuration = loadConfiguration(options) else { exit(1) }
    // The plugins are loaded and every instance created, as serving would (nothing is served and
    // no network is touched), so a config that cannot serve what it says fails here.
    var quiet = Logger(label: "prism")
    quiet.logLevel = .error
    do {
        let directory = options.pluginsDirectory ?? configuration.pluginsDirectory ?? defaultPluginsDirectory()
        var offline = configuration
        offline.redis = nil // shared state in memory: validating connects to nothing
        let gateway = try Gateway(configuration: offline, pluginsDirectory: directory, logger: quiet, discover: false)
        for warning in gateway.configurationWarnings { printError("\(warning)\n") }
    } catch {
        printError("\(configuration.source): error: \(error)\n")
        exit(1)
    }
    print("config OK: \(configuration.source)")
    exit(0)
case "plugins":
    let configuration = options.configPath == nil ? nil : loadConfiguration(options)
    let directory = options.pluginsDirectory ?? configuration?.pluginsDirectory ?? defaultPluginsDirectory()
    let registry = PluginRegistry(logger: Logger(label: "prism"))
    registry.loadDirectory(directory)
    for plugin in registry.plugins {
        let kinds = Set(plugin.components.map(\.kind)).sorted().joined(separator: ",")
        let names = plugin.components.map(\.name).joined(separator: ",")
        let file = plugin.file.split(separator: "/").last.map(String.init) ?? plugin.file
        print("\(plugin.id) \(plugin.version) kinds=\(kinds) components=\(names) abi=\(plugin.abiMajor).\(plugin.abiMinor) file=\(file)")
    }
    for refusal in registry.refusals {
        let file = refusal.file.split(separator: "/").last.map(String.init) ?? refusal.file
        print("refused \(file): \(refusal.reason)")
    }
    exit(0)
default:
    guard let configuration = loadConfiguration(options) else { exit(1) }
    // Only serving takes SIGTERM/SIGINT/SIGHUP itself (to drain and reload); validate and plugins
    // keep the default actions, so Ctrl-C stops them at once. Blocked before any thread starts,
    // so every thread inherits the mask.
    TerminationSignals.block()
    var logger = Logger(label: "prism")
    logger.logLevel = configuration.logging.level.loggerLevel
    do {
        let runtime = try GatewayRuntime(file: configuration, configPath: configPath(options),
                                         pluginsDirectoryOverride: options.pluginsDirectory,
                                         defaultPluginsDirectory: defaultPluginsDirectory(), logger: logger)
        runtime.watchConfigFile()
        let server = HTTPServer(runtime: runtime)
        try server.run(host: options.host ?? configuration.server.host, port: options.port ?? configuration.server.port)
        runtime.flushBeforeExit()
        // Drained: skip exit-time handlers (they add ~1 s and have nothing left to do; logs are
        // written straight to fd 2).
        _exit(0)
    } catch {
        logger.critical("cannot start: \(error)")
        exit(1)
    }
}
