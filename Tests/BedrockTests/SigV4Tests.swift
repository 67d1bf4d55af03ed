import AWSKit
import PrismWire
import XCTest
import PluginKit
import PrismProviderBedrock

/// Signature Version 4 against AWS's published examples and against botocore's signer.
final class SigV4Tests: XCTestCase {
    let suiteCredentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    let emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    let suiteDate = "20150830T123600Z"

    /// AWS Signature Version 4 test suite (docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html,
    /// aws-sig-v4-test-suite.zip; region us-east-1, service "service", 20150830T123600Z).
    func suite(_ method: String, path: String = "/", query: [(String, String)] = [], headers extra: [(String, String)] = [],
               body: String = "") -> AWSSigV4.Signature
    {
        let headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", suiteDate)] + extra
        return AWSSigV4.sign(AWSSigV4.Request(method: method, path: path, query: query, headers: headers,
                                              payloadHash: Hex.encode(SHA256.hash(body))),
                             credentials: suiteCredentials, region: "us-east-1", service: "service", amzDate: suiteDate)
    }

    func testSuiteGetVanillaStepByStep() {
        let signature = suite("GET")
        XCTAssertEqual(signature.canonicalRequest,
                       "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\(emptyHash)")
        XCTAssertEqual(signature.stringToSign, "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            + "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63")
        XCTAssertEqual(signature.authorization, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            + "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    }

    func testSuiteCases() {
        let cases: [(String, AWSSigV4.Signature, String)] = [
            ("post-vanilla", suite("POST"), "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
            ("get-unreserved", suite("GET", path: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
             "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"),
            ("get-utf8", suite("GET", path: "/ሴ"), "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
            ("get-vanilla-query-order-key-case", suite("GET", query: [("Param2", "value2"), ("Param1", "value1")]),
             "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
            ("get-vanilla-utf8-query", suite("GET", query: [("ሴ", "bar")]),
             "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"),
            ("get-header-value-trim", suite("GET", headers: [("My-Header1", " value1"), ("My-Header2", "\"a   b   c\"")]),
             "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
            ("get-header-key-duplicate", suite("GET", headers: [("My-Header1", "value2"), ("My-Header1", "value2"),
                                                               ("My-Header1", "value1")]),
             "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"),
            ("post-header-value-case", suite("POST", headers: [("My-Header1", "VALUE1")]),
             "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"),
            ("post-x-www-form-urlencoded", suite("POST", headers: [("Content-Type", "application/x-www-form-urlencoded")],
                                                 body: "Param1=value1"),
             "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
        ]
        for (name, signature, expected) in cases { XCTAssertEqual(signature.signature, expected, name) }
    }

    /// The suite's post-sts-token/post-sts-header-after: a session token is signed as a header.
    func testSuiteSessionToken() {
        let token = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
        let signature = suite("POST", headers: [("X-Amz-Security-Token", token)])
        XCTAssertEqual(signature.signedHeaders, "host;x-amz-date;x-amz-security-token")
        XCTAssertEqual(signature.signature, "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead")
    }

    /// "Examples of how to derive a signing key for Signature Version 4" (AWS General Reference).
    func testDocumentedSigningKey() {
        let key = AWSSigV4.signingKey(secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", date: "20120215",
                                      region: "us-east-1", service: "iam")
        XCTAssertEqual(Hex.encode(key), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d")
    }

    /// The IAM ListUsers example of "Signature Version 4 signing process" (AWS General Reference).
    func testDocumentedIAMExample() {
        let signature = AWSSigV4.sign(
            AWSSigV4.Request(method: "GET", path: "/", query: [("Action", "ListUsers"), ("Version", "2010-05-08")],
                             headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
                                       ("Host", "iam.amazonaws.com"), ("X-Amz-Date", suiteDate)],
                             payloadHash: emptyHash),
            credentials: suiteCredentials, region: "us-east-1", service: "iam", amzDate: suiteDate)
        XCTAssertEqual(signature.authorization, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
            + "SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
    }

    /// Requests boto3 1.43's bedrock-runtime client itself sent (captured in a before-send hook with
    /// the clock fixed at 2026-08-21T12:00:00Z): the model id is `…%3A0` on the wire and signed
    /// double-encoded; an inference-profile ARN's `/` is `%2F`.
    func testBoto3BedrockRequests() {
        let date = "20260821T120000Z"
        func sign(_ path: String, _ headers: [(String, String)], _ body: String, region: String,
                  token: String? = nil) -> String
        {
            var credentials = suiteCredentials
            credentials.sessionToken = token
            return AWSSigV4.sign(AWSSigV4.Request(method: "POST", path: path, headers: headers,
                                                  payloadHash: Hex.encode(SHA256.hash(body))),
                                 credentials: credentials, region: region, service: "bedrock", amzDate: date).authorization
        }
        let converse = #"{"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}"#
        XCTAssertEqual(sign("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
                            [("Content-Type", "application/json"), ("Host", "bedrock-runtime.us-east-1.amazonaws.com"),
                             ("X-Amz-Date", date), ("X-Amz-Security-Token", "session-token-example")],
                            converse, region: "us-east-1", token: "session-token-example"),
                       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260821/us-east-1/bedrock/aws4_request, "
                           + "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, "
                           + "Signature=5f37b9fc4226530374f090f4be2be5e75437c908c17d090bd6441f459f00b18f")
        XCTAssertEqual(sign("/model/amazon.titan-embed-text-v2%3A0/invoke",
                            [("Content-Type", "application/json"), ("Accept", "application/json"),
                             ("Host", "bedrock-runtime.us-west-2.amazonaws.com"), ("X-Amz-Date", date)],
                            #"{"inputText":"hello world","normalize":true}"#, region: "us-west-2"),
                       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260821/us-west-2/bedrock/aws4_request, "
                           + "SignedHeaders=accept;content-type;host;x-amz-date, "
                           + "Signature=0903d3e3508b4c843d432a60c9529955d61611d4686501968e450a08051842d8")
        let arn = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0"
        XCTAssertEqual(PercentEncoding.encode(arn),
                       "arn%3Aaws%3Abedrock%3Aus-west-2%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-sonnet-20240620-v1%3A0")
        XCTAssertEqual(sign("/model/\(PercentEncoding.encode(arn))/converse",
                            [("Content-Type", "application/json"), ("Host", "bedrock-runtime.us-west-2.amazonaws.com"),
                             ("X-Amz-Date", date)], converse, region: "us-west-2"),
                       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260821/us-west-2/bedrock/aws4_request, "
                           + "SignedHeaders=content-type;host;x-amz-date, "
                           + "Signature=6d516e7970e7558146b17f1c9ea440fe54f45a040bb2fdb6f03dd31db6cd74de")
    }

    /// The header set the plugin sends, signed: expected values from botocore's SigV4Auth (1.43)
    /// over the same request (its canonical request printed alongside).
    func testPluginHeadersMatchBotocore() throws {
        let body = Array(#"{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}"#.utf8)
        let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: suiteCredentials.secretAccessKey,
                                         sessionToken: "session-token-example")
        let aws = try BedrockConfiguration.endpoint(BedrockConfiguration.defaultBaseURL, region: "us-east-1", name: "t")
        let headers = BedrockSigning.signedHeaders(path: "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
                                                   body: body, endpoint: aws, credentials: credentials,
                                                   amzDate: "20260821T120000Z")
        XCTAssertEqual(headers.map(\.0), ["content-type", "host", "x-amz-content-sha256", "x-amz-date",
                                          "x-amz-security-token", "authorization"])
        XCTAssertEqual(headers[1].1, "bedrock-runtime.us-east-1.amazonaws.com")
        XCTAssertEqual(headers[2].1, "45e583fed2564dc00e823303d7609f8587af7f685b993cb0f998afc0d480b01d")
        XCTAssertEqual(headers[5].1, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260821/us-east-1/bedrock/aws4_request, "
            + "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, "
            + "Signature=e681947fd38c6012c1068d4e33ced5fa2a1231b78e3d9c9685751832a3bd80b3")

        // A test endpoint with a port and a {region} path prefix: the region still scopes the signature.
        let local = try BedrockConfiguration.endpoint("http://127.0.0.1:8443/{region}", region: "eu-west-1", name: "t")
        XCTAssertEqual(local, BedrockEndpoint(region: "eu-west-1", base: "http://127.0.0.1:8443/eu-west-1",
                                              host: "127.0.0.1:8443", pathPrefix: "/eu-west-1"))
        let signed = BedrockSigning.signedHeaders(
            path: "/eu-west-1/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream", body: body,
            endpoint: local, credentials: suiteCredentials, amzDate: "20260821T120000Z")
        XCTAssertEqual(signed.last?.1, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260821/eu-west-1/bedrock/aws4_request, "
            + "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, "
            + "Signature=12786f91f4a5f9ab989cc9ac6fec157c2d8795a8e63fdbf68b3f6d6d935babf5")
    }

    func testSigningKeyCacheGivesTheDerivedKeys() {
        let cache = AWSSigV4.SigningKeyCache()
        for (date, region) in [("20260821", "us-east-1"), ("20260821", "us-west-2"), ("20260821", "us-east-1"), ("20260822", "us-east-1")] {
            XCTAssertEqual(cache.key(secretAccessKey: "secret", date: date, region: region, service: "bedrock"),
                           AWSSigV4.signingKey(secretAccessKey: "secret", date: date, region: region, service: "bedrock"))
        }
    }

    func testHeaderValuesAreNormalized() {
        let (canonical, signed) = AWSSigV4.canonicalHeaders([("X-B", "\t a \t b  "), ("x-a", "plain"), ("X-A", "two")])
        XCTAssertEqual(canonical, "x-a:plain,two\nx-b:a b\n")
        XCTAssertEqual(signed, "x-a;x-b")
    }

    func testCanonicalURIDoubleEncodes() {
        XCTAssertEqual(AWSSigV4.canonicalURI("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"),
                       "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse")
        XCTAssertEqual(AWSSigV4.canonicalURI("/model/a%2Fb~c/invoke"), "/model/a%252Fb~c/invoke")
        XCTAssertEqual(AWSSigV4.canonicalURI(""), "/")
    }

    func testAmzDate() {
        XCTAssertEqual(AWSSigV4.amzDate(epochMilliseconds: 0), "19700101T000000Z")
        XCTAssertEqual(AWSSigV4.amzDate(epochMilliseconds: 1_440_938_160_000), "20150830T123600Z")
        XCTAssertEqual(AWSSigV4.amzDate(epochMilliseconds: 1_787_313_600_999), "20260821T120000Z")
        XCTAssertEqual(AWSSigV4.amzDate(epochMilliseconds: 951_825_599_000), "20000229T115959Z") // leap day
        XCTAssertEqual(AWSSigV4.amzDate(epochMilliseconds: 4_102_444_800_000), "21000101T000000Z")
    }
}
