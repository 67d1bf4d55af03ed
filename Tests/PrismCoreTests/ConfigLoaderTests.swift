import XCTest
import PrismCore

final class ConfigLoaderTests: XCTestCase {
    func load(_ text: String, environment: [String: String] = [:]) throws -> (GatewayConfiguration, [ConfigDiagnostic]) {
        var loader = ConfigLoader(environment: { environment[$0] })
        return try loader.load(text: text, file: "test.yaml")
    }

    func testDefaultsApplyWhenKeysAreAbsent() throws {
        let (configuration, _) = try load("providers: {}\n")
        XCTAssertEqual(configuration.server.port, 8080)
        XCTAssertEqual(configuration.server.host, "0.0.0.0")
        XCTAssertEqual(configuration.server.readTimeout, .seconds(5))
        XCTAssertEqual(configuration.server.writeTimeout, .seconds(300))
        XCTAssertEqual(configuration.server.idleTimeout, .seconds(120))
        XCTAssertEqual(configuration.server.shutdownTimeout, .seconds(30))
        XCTAssertEqual(configuration.server.drainDelay, .zero)
        XCTAssertEqual(configuration.server.maxRequestBodySize, 33_554_432)
        XCTAssertEqual(configuration.server.defaultRequestTimeout, .seconds(60))
        XCTAssertEqual(configuration.logging.level, .info)
    }

    func testDrainDelayAndTheDataDirectory() throws {
        let text = "server: {drain_delay: 5s}\nadmin: {token: admin-token-0123456789}\nproviders: {}\n"
        let (configuration, _) = try load(text)
        XCTAssertEqual(configuration.server.drainDelay, .seconds(5))
        XCTAssertEqual(configuration.admin.storePath, "prism-admin.sqlite") // no directory in "test.yaml"
        let (inImage, _) = try load(text, environment: ["PRISM_DATA_DIR": "/var/lib/prism"])
        XCTAssertEqual(inImage.admin.storePath, "/var/lib/prism/prism-admin.sqlite")
        let (absolute, _) = try load("admin: {token: admin-token-0123456789, store: /srv/a.sqlite}\nproviders: {}\n",
                                     environment: ["PRISM_DATA_DIR": "/var/lib/prism"])
        XCTAssertEqual(absolute.admin.storePath, "/srv/a.sqlite")
    }

    func testBusyPollIsFinerThanAMillisecondAndBounded() throws {
        XCTAssertEqual(try load("providers: {}\n").0.server.busyPoll, .microseconds(200))
        for (text, expected) in [("150us", Duration.microseconds(150)), ("75µs", .microseconds(75)), ("0.5ms", .microseconds(500)),
                                 ("0", .zero), ("2ms", .milliseconds(2))] {
            XCTAssertEqual(try load("server: {busy_poll: \"\(text)\"}\nproviders: {}\n").0.server.busyPoll, expected, text)
        }
        for text in ["11ms", "1s", "fast", "-5us"] {
            XCTAssertThrowsError(try load("server: {busy_poll: \"\(text)\"}\nproviders: {}\n"), text) { error in
                XCTAssertTrue("\(error)".contains("server.busy_poll: expected a duration from 0 to 10ms"), "\(error)")
            }
        }
    }

    func testCPUAffinityIsAutoOrOff() throws {
        XCTAssertEqual(try load("providers: {}\n").0.server.cpuAffinity, .auto)
        XCTAssertEqual(try load("server: {cpu_affinity: \"off\"}\nproviders: {}\n").0.server.cpuAffinity, .off)
        XCTAssertEqual(try load("server: {cpu_affinity: auto}\nproviders: {}\n").0.server.cpuAffinity, .auto)
        XCTAssertEqual(try load("server:\n  cpu_affinity: off\nproviders: {}\n").0.server.cpuAffinity, .off)
        XCTAssertEqual(try load("server:\n  cpu_affinity: false\nproviders: {}\n").0.server.cpuAffinity, .off)
        XCTAssertThrowsError(try load("server: {cpu_affinity: \"0-3\"}\nproviders: {}\n")) { error in
            XCTAssertTrue("\(error)".contains("server.cpu_affinity: expected auto or off, got '0-3'"), "\(error)")
        }
    }

    func testSeedConfigurationLoadsWithEnvironmentExpanded() throws {
        let seed = """
        server:
          port: 8080
          host: "0.0.0.0"
        providers:
          openai:
            api_key: "${OPENAI_API_KEY}"
            api_format: "openai"
            models:
              - gpt-4o
              - gpt-4o-mini
          ollama:
            base_url: "http://localhost:11434"
            api_format: "openai"
            type: "ollama"
        auth:
          enabled: true
          keys:
            - name: "my-key"
              key: "sk-prism-my-key-here"
              owner: "dev-team"
              models: [gpt-4o-mini]
        logging:
          level: info
        """
        let (configuration, warnings) = try load(seed, environment: ["OPENAI_API_KEY": "sk-test"])
        XCTAssertTrue(warnings.isEmpty, "\(warnings)")
        XCTAssertEqual(configuration.providers.map(\.name), ["openai", "ollama"])
        XCTAssertEqual(configuration.providers[0].models, ["gpt-4o", "gpt-4o-mini"])
        XCTAssertEqual(configuration.providers[0].section["api_key"]?.stringValue, "sk-test")
        XCTAssertTrue(configuration.providers[1].discoversModels)
        XCTAssertEqual(configuration.middleware.map(\.name), ["auth"])
        XCTAssertEqual(configuration.middleware[0].configuration["keys"]?.arrayValue?.count, 1)
    }

    func testMissingVariableIsAnErrorNamingItsLocation() {
        let text = "providers:\n  openai:\n    api_format: openai\n    api_key: \"${MISSING_KEY}\"\n"
        XCTAssertThrowsError(try load(text)) { error in
            let description = "\(error)"
            XCTAssertTrue(description.contains("test.yaml:4:14"), description)
            XCTAssertTrue(description.contains("providers.openai.api_key"), description)
            XCTAssertTrue(description.contains("MISSING_KEY"), description)
        }
    }

    func testDefaultValueSyntax() throws {
        let text = "providers:\n  openai:\n    api_format: openai\n    api_key: \"${MISSING_KEY:-fallback}\"\n"
        let (configuration, _) = try load(text)
        XCTAssertEqual(configuration.providers[0].section["api_key"]?.stringValue, "fallback")
    }

    func testDurations() {
        XCTAssertEqual(ConfigLoader.parseDuration("500ms"), .milliseconds(500))
        XCTAssertEqual(ConfigLoader.parseDuration("30s"), .seconds(30))
        XCTAssertEqual(ConfigLoader.parseDuration("5m"), .seconds(300))
        XCTAssertEqual(ConfigLoader.parseDuration("1h"), .seconds(3600))
        XCTAssertEqual(ConfigLoader.parseDuration("1.5s"), .milliseconds(1500))
        XCTAssertEqual(ConfigLoader.parseDuration("10"), .seconds(10))
        XCTAssertNil(ConfigLoader.parseDuration("5 parsecs"))
        XCTAssertNil(ConfigLoader.parseDuration("-1s"))
    }

    func testBadValueNamesFileLineColumnAndKeyPath() {
        XCTAssertThrowsError(try load("server:\n  read_timeout: 5 parsecs\n")) { error in
            XCTAssertTrue("\(error)".contains("test.yaml:2:17: error: server.read_timeout: invalid duration"), "\(error)")
        }
        XCTAssertThrowsError(try load("server:\n  port: 70000\n")) { error in
            XCTAssertTrue("\(error)".contains("test.yaml:2:9: error: server.port"), "\(error)")
        }
    }

    func testUnknownKeysAreWarnings() throws {
        let (_, warnings) = try load("server:\n  prot: 1\ncache:\n  enabled: true\n  ttl: 5m\nfoo: 1\n")
        let text = warnings.map(\.description)
        XCTAssertTrue(text.contains { $0.hasPrefix("test.yaml:2:3: warning: server.prot") }, "\(text)")
        XCTAssertTrue(text.contains { $0.hasPrefix("test.yaml:5:3: warning: cache.ttl") }, "\(text)")
        XCTAssertTrue(text.contains { $0.hasPrefix("test.yaml:6:1: warning: foo") }, "\(text)")
    }

    func testStateSectionsSetTheDefaultMiddlewareOrderAndRedis() throws {
        let (configuration, _) = try load("""
        rate_limiting: {enabled: true, global_rpm: 10}
        cache: {enabled: true, default_ttl: 1m}
        redis: {address: "redis.internal:6380", password: pw, db: 2, prefix: "p:"}
        """)
        XCTAssertEqual(configuration.middleware.map(\.name), ["auth", "rate_limit", "cache"])
        let redis = try XCTUnwrap(configuration.redis)
        XCTAssertEqual(redis.host, "redis.internal")
        XCTAssertEqual(redis.port, 6380)
        XCTAssertEqual(redis.database, 2)
        XCTAssertEqual(redis.prefix, "p:")
        XCTAssertNil(try load("redis: {enabled: false}\n").0.redis)
        XCTAssertThrowsError(try load("redis:\n  address: \"host:99999\"\n")) { error in
            XCTAssertTrue("\(error)".contains("test.yaml:2:12: error: redis.address"), "\(error)")
        }
        XCTAssertThrowsError(try load("cache:\n  default_ttl: soon\n")) { error in
            XCTAssertTrue("\(error)".contains("cache.default_ttl"), "\(error)")
        }
    }

    func testYAMLSyntaxErrorHasPosition() {
        XCTAssertThrowsError(try load("server:\n  port: [1, 2\n")) { error in
            XCTAssertTrue("\(error)".contains("test.yaml:3:"), "\(error)")
            XCTAssertTrue("\(error)".contains("YAML syntax error"), "\(error)")
        }
    }

    func testPlainScalarsBecomeTypedJSONForPlugins() throws {
        let (configuration, _) = try load("providers:\n  p:\n    api_format: x\n    weight: 3\n    flag: true\n    quoted: \"7\"\n")
        let section = configuration.providers[0].section
        XCTAssertEqual(section["weight"], .number("3"))
        XCTAssertEqual(section["flag"], .bool(true))
        XCTAssertEqual(section["quoted"], .string("7"))
        XCTAssertEqual(section["name"], .string("p"))
    }

    func testExplicitMiddlewareListTakesSections() throws {
        let (configuration, _) = try load("auth:\n  enabled: false\nmiddleware: [auth, {name: custom, config: {x: 1}}]\n")
        XCTAssertEqual(configuration.middleware.map(\.name), ["auth", "custom"])
        XCTAssertEqual(configuration.middleware[1].configuration["x"], .number("1"))
    }

    /// A timeout of the config fuzz target: few values (under the 200,000 cap), but each alias
    /// repeats a long anchored value, so a 12 KB file expanded to a gigabyte of text. The expanded
    /// text is capped too.
    func testAliasesOfALongValueCannotExpandPastTheTextCap() {
        var lines = ["x: &x \"" + String(repeating: "a", count: 2048) + "\""]
        lines.append("a: &a [" + Array(repeating: "*x", count: 10).joined(separator: ", ") + "]")
        for (name, previous) in [("b", "a"), ("c", "b"), ("d", "c")] {
            lines.append("\(name): &\(name) [" + Array(repeating: "*\(previous)", count: 10).joined(separator: ", ") + "]")
        }
        lines.append("providers: {}")
        XCTAssertThrowsError(try load(lines.joined(separator: "\n"))) { error in
            XCTAssertTrue("\(error)".contains("MiB of text"), "\(error)")
        }
    }
}
