import XCTest

// Bedrock tests land with issue 4.
final class BedrockPlaceholderTests: XCTestCase {}
