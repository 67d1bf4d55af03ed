import AnthropicDialect
import PluginKit
import PrismPluginABI

// The plugin's entry only: the dialect lives in its own target, so that its unit tests link
// without this exported symbol (every plugin exports one; a test bundle may hold only one).
@c(prism_plugin_entry_v1)
public func prismPluginEntry(_ host: UnsafePointer<prism_host_api>?,
                             _ out: UnsafeMutablePointer<UnsafePointer<prism_plugin_descriptor>?>?) -> prism_status
{
    PluginExport.entry(host, out, id: "dev.prism.ingress.anthropic", version: "1.0.0",
                       components: [.ingress("anthropic", AnthropicIngress.self)])
}
