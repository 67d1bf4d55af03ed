/// The configuration used when no file is given: the same as config/prism.yaml (a mock provider,
/// no keys), so the binary alone answers requests.
public enum DefaultConfiguration {
    public static let text = """
    server:
      port: 8080
      host: "0.0.0.0"
    providers:
      mock:
        type: "mock"
        models: [mock-gpt, mock-gpt-mini, mock-embedding]
    auth:
      enabled: false
    logging:
      level: info
    """
}
