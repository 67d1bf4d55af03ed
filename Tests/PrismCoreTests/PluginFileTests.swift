import Glibc
import XCTest
import PrismCore

/// The loader's file checks in process: ELF sections read with pread, the Swift toolchain line,
/// the provider keys the host reads itself, and the signature that tells a changed file.
final class PluginFileTests: XCTestCase {
    func testTheRunningBinarysToolchainIsReadFromItsCommentSection() throws {
        let descriptor = open("/proc/self/exe", O_RDONLY | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(descriptor, 0)
        defer { close(descriptor) }
        let sections = try XCTUnwrap(ELFSections(descriptor: descriptor))
        let toolchain = try XCTUnwrap(SwiftToolchainCheck.toolchain(in: sections.strings(".comment")))
        XCTAssertTrue(toolchain.contains("llvm-project"), toolchain)
        XCTAssertEqual(SwiftToolchainCheck.host, toolchain)
    }

    func testTheToolchainLineIsTheSwiftForksNotTheCCompilers() {
        let comments = ["GCC: (Debian 12.2.0-14) 12.2.0",
                        "clang version 21.0.0 (https://github.com/swiftlang/llvm-project.git 0123abcd)"]
        XCTAssertEqual(SwiftToolchainCheck.toolchain(in: comments), comments[1])
        XCTAssertNil(SwiftToolchainCheck.toolchain(in: ["GCC: (Debian 12.2.0-14) 12.2.0"]))
    }

    func testSomethingThatIsNotELFHasNoSections() throws {
        let path = "/tmp/prism-not-elf-\(getpid())"
        let descriptor = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        XCTAssertGreaterThanOrEqual(descriptor, 0)
        defer { close(descriptor); unlink(path) }
        var bytes = Array("\u{7F}ELF but truncated".utf8)
        _ = write(descriptor, &bytes, bytes.count)
        XCTAssertNil(ELFSections(descriptor: descriptor))
        XCTAssertNil(SwiftToolchainCheck.refusal(forPlugin: descriptor))
    }

    func testAFileRewrittenInPlaceHasAnotherSignature() throws {
        let path = "/tmp/prism-signature-\(getpid())"
        defer { unlink(path) }
        func signature() -> PluginRegistry.FileSignature {
            var status = stat()
            XCTAssertEqual(stat(path, &status), 0)
            return PluginRegistry.FileSignature(status)
        }
        func write(_ text: String) {
            let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            var bytes = Array(text.utf8)
            _ = Glibc.write(descriptor, &bytes, bytes.count)
            close(descriptor)
        }
        write("version one")
        let first = signature()
        XCTAssertEqual(first, signature())
        write("version two, longer") // same inode, other size
        XCTAssertNotEqual(first, signature())
    }

    func testTheHostKnowsNoFirstPartyProviderKeys() {
        for key in ["project", "location", "aws_region", "deployments", "reply", "api_version"] {
            XCTAssertFalse(ConfigLoader.providerKeys.contains(key), key)
        }
        for key in ["api_key", "base_url", "models", "headers", "api_format", "type"] {
            XCTAssertTrue(ConfigLoader.providerKeys.contains(key), key)
        }
    }
}
