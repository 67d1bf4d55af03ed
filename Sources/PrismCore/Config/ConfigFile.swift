#if canImport(Glibc)
import Glibc
#endif

public enum ConfigFile {
    /// Reads a whole text file, or nil with the reason.
    public static func read(_ path: String) -> Result<String, ConfigError> {
        guard let file = fopen(path, "rb") else {
            let reason = String(cString: strerror(errno))
            return .failure(ConfigError(diagnostics: [ConfigDiagnostic(
                severity: .error, location: SourceLocation(file: path, line: 0, column: 0), keyPath: "",
                message: "cannot open config file: \(reason)")]))
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return .success(String(decoding: bytes, as: UTF8.self))
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }
}
