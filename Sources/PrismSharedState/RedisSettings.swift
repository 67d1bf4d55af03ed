/// `redis:`: where rate-limit counters and cached answers live when several replicas share them.
public struct RedisSettings: Sendable, Equatable {
    public var enabled = true
    public var host = "127.0.0.1"
    public var port: Int32 = 6379
    public var password = ""
    public var database = 0
    public var prefix = "prism:"
    /// A command without a reply after this long counts as Redis being unreachable.
    public var timeout: Duration = .milliseconds(500)

    public init() {}
}
