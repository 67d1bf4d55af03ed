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
        func failure(_ message: String) -> Result<String, ConfigError> {
            .failure(ConfigError(diagnostics: [ConfigDiagnostic(
                severity: .error, location: SourceLocation(file: path, line: 0, column: 0), keyPath: "", message: message)]))
        }
        // A directory (or a device) is not a config: refuse it rather than serve the defaults.
        var info = stat()
        guard fstat(fileno(file), &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            return failure("not a regular file: give the path of a config.yaml")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > maximumSize {
                return failure("the config file is larger than \(maximumSize / 1_048_576) MiB")
            }
        }
        return .success(String(decoding: bytes, as: UTF8.self))
    }

    /// No real config comes near this; a larger file is a mistake or an attack.
    public static let maximumSize = 4 * 1_048_576

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }
}
