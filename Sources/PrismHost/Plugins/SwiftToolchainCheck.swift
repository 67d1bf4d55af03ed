#if canImport(Glibc)
import Glibc
#endif

/// Swift has no stable ABI on Linux: a Swift plugin built with another toolchain than the host's
/// would run against this process's Swift runtime and fail in ways nobody can diagnose (wrong
/// metadata layouts, crashes far from the cause). Every object the Swift toolchain links carries
/// its compiler's identity in the ELF `.comment` section (`clang version … (…/llvm-project.git
/// <commit>)`, which `strip --strip-all` keeps), so the loader compares a plugin that needs
/// `libswiftCore.so` with the host before mapping it.
package enum SwiftToolchainCheck {
    /// The toolchain line of the running host, read once.
    package static let host: String? = {
        let descriptor = open("/proc/self/exe", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        return ELFSections(descriptor: descriptor).flatMap { toolchain(in: $0.strings(".comment")) }
    }()

    /// Nil when `descriptor` (a plugin file) may be loaded; otherwise why not.
    package static func refusal(forPlugin descriptor: Int32) -> String? {
        guard let sections = ELFSections(descriptor: descriptor),
              sections.strings(".dynstr").contains(where: { $0.hasPrefix("libswiftCore.so") }),
              let host
        else { return nil } // not a Swift plugin, or nothing to compare with
        guard let plugin = toolchain(in: sections.strings(".comment")) else { return nil }
        guard plugin != host else { return nil }
        return "built with another Swift toolchain (\(plugin)) than this gateway (\(host)); "
            + "Swift has no stable ABI on Linux: rebuild the plugin with the gateway's toolchain"
    }

    /// The Swift toolchain's compiler line: the one naming the swiftlang LLVM fork.
    package static func toolchain(in comments: [String]) -> String? {
        comments.first { $0.contains("swiftlang/llvm-project") || $0.contains("apple/llvm-project") }
    }
}

/// Just enough ELF64 (little-endian) to list a section's NUL-separated strings, read with pread
/// from a descriptor. Anything malformed reads as "no such section".
package struct ELFSections {
    private let descriptor: Int32
    private var sections: [(name: String, offset: Int, size: Int)] = []

    package init?(descriptor: Int32) {
        self.descriptor = descriptor
        guard let header = ELFSections.read(descriptor, offset: 0, count: 64), header.count == 64,
              header[0] == 0x7F, header[1] == 0x45, header[2] == 0x4C, header[3] == 0x46,
              header[4] == 2, header[5] == 1 // 64-bit, little-endian
        else { return nil }
        let sectionOffset = Int(ELFSections.integer(header, 0x28, 8))
        let entrySize = Int(ELFSections.integer(header, 0x3A, 2))
        let count = Int(ELFSections.integer(header, 0x3C, 2))
        let namesIndex = Int(ELFSections.integer(header, 0x3E, 2))
        guard entrySize >= 64, count > 0, count < 4096, namesIndex < count,
              let table = ELFSections.read(descriptor, offset: sectionOffset, count: entrySize * count),
              table.count == entrySize * count
        else { return nil }
        func entry(_ index: Int) -> (name: Int, offset: Int, size: Int) {
            let base = index * entrySize
            return (Int(ELFSections.integer(table, base, 4)), Int(ELFSections.integer(table, base + 0x18, 8)),
                    Int(ELFSections.integer(table, base + 0x20, 8)))
        }
        let names = entry(namesIndex)
        guard names.size < 1 << 20, let nameBytes = ELFSections.read(descriptor, offset: names.offset, count: names.size)
        else { return nil }
        for index in 0..<count {
            let section = entry(index)
            guard section.name < nameBytes.count else { continue }
            let end = nameBytes[section.name...].firstIndex(of: 0) ?? nameBytes.count
            sections.append((String(decoding: nameBytes[section.name..<end], as: UTF8.self), section.offset, section.size))
        }
    }

    /// The NUL-separated strings of section `name` (at most 1 MiB of it).
    package func strings(_ name: String) -> [String] {
        guard let section = sections.first(where: { $0.name == name }), section.size > 0,
              let bytes = ELFSections.read(descriptor, offset: section.offset, count: min(section.size, 1 << 20))
        else { return [] }
        return bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    private static func read(_ descriptor: Int32, offset: Int, count: Int) -> [UInt8]? {
        guard offset >= 0, count >= 0, count <= 1 << 24 else { return nil }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let result = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if result <= 0 { break }
            done += result
        }
        return Array(bytes[0..<done])
    }

    private static func integer(_ bytes: [UInt8], _ offset: Int, _ width: Int) -> UInt64 {
        guard offset + width <= bytes.count else { return 0 }
        var value: UInt64 = 0
        for index in (0..<width).reversed() { value = value << 8 | UInt64(bytes[offset + index]) }
        return value
    }
}
