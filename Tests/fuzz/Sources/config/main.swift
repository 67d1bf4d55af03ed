// libFuzzer target: the config loader, on the bytes of a config.yaml.
//
// The input goes the way `prism-gateway --config FILE` reads it: ConfigFile.read (regular-file
// check, the size cap, UTF-8 decoding) from a memfd, then ConfigLoader.load: libyaml's event
// stream, the node builder with its alias-expansion and nesting caps, ${VAR} expansion and every
// section reader. Errors are the expected outcome for most inputs; a crash, a sanitizer report, a
// hang (-timeout) or memory beyond -rss_limit_mb (an alias bomb past the caps) is a finding.

import FuzzSupport
import PrismCore

#if canImport(Glibc)
import Glibc
#endif

/// A fixed environment, so that ${VAR} expansion is exercised and runs are reproducible.
let environment: [String: String] = [
    "OPENAI_API_KEY": "sk-fuzz-openai", "ANTHROPIC_API_KEY": "sk-ant-fuzz", "EMPTY": "", "PORT": "8080",
    "PRISM_DATA_DIR": "/var/lib/prism", "HOME": "/home/prism", "REDIS_URL": "redis://127.0.0.1:6379/0",
    "BRACES": "${OPENAI_API_KEY}", "SPACES": " a b ",
]

let descriptor = anonymousFile("prism-fuzz-config")
require(descriptor >= 0, "memfd_create failed")
let path = "/proc/self/fd/\(descriptor)"

runFuzzer { bytes in
    require(ftruncate(descriptor, 0) == 0, "ftruncate")
    require(pwrite(descriptor, bytes.baseAddress, bytes.count, 0) == bytes.count, "pwrite")
    let text: String
    switch ConfigFile.read(path) {
    case let .success(contents): text = contents
    case let .failure(error):
        fatalError("ConfigFile.read refused a \(bytes.count)-byte file: \(error)")
    }
    var loader = ConfigLoader(environment: { environment[$0] })
    do throws(ConfigError) {
        let (configuration, warnings) = try loader.load(text: text, file: "/etc/prism/config.yaml")
        // What the gateway prints and keeps: diagnostics, and the document /-/config serves.
        for warning in warnings { _ = warning.description }
        _ = configuration.document.jsonBytes
        require(warnings.allSatisfy { $0.severity == .warning }, "an error diagnostic in a loaded config")
    } catch {
        require(!error.diagnostics.isEmpty, "a refused config without a diagnostic")
        _ = error.description
    }
}
