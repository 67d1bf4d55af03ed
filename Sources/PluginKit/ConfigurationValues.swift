import PrismWire

extension JSONValue {
    /// Member `key` of a plugin's configuration read as an on/off switch: absent or null is
    /// `defaultValue`; a boolean, or "true"/"false" as an expanded `${VAR}` writes it, is its value;
    /// anything else refuses the configuration (a security switch never defaults to off on a value
    /// it does not understand).
    public func configurationSwitch(_ key: String, section: String,
                                    default defaultValue: Bool = false) throws(PluginError) -> Bool
    {
        guard let value = self[key], value != .null else { return defaultValue }
        guard let enabled = value.switchValue else {
            throw PluginError.configuration("\(section).\(key): expected true or false, got \(value.jsonText)")
        }
        return enabled
    }
}
