import CSQLite

/// The few SQLite calls the admin store needs: one connection, statements with bound values,
/// rows copied out. Not thread-safe: the store uses it from the control queue only.
package final class SQLiteDatabase {
    package struct Failure: Error, CustomStringConvertible {
        package let code: Int32
        package let message: String
        package var description: String { "SQLite error \(code): \(message)" }
    }

    package enum Value {
        case text(String)
        case blob([UInt8])
        case integer(Int64)
        case null

        package var text: String {
            if case let .text(value) = self { return value }
            return ""
        }

        package var bytes: [UInt8] {
            switch self {
            case let .blob(value): return value
            case let .text(value): return Array(value.utf8)
            default: return []
            }
        }

        package var integer: Int64 {
            if case let .integer(value) = self { return value }
            return 0
        }

        package var isNull: Bool {
            if case .null = self { return true }
            return false
        }
    }

    private var handle: OpaquePointer?

    /// `serializedByOwner`: every call comes through one queue of the owner's, so SQLite's own
    /// per-call mutex is left out (a fifth of the spend ledger's time went to it).
    package init(path: String, serializedByOwner: Bool = false) throws {
        let threading = serializedByOwner ? SQLITE_OPEN_NOMUTEX : SQLITE_OPEN_FULLMUTEX
        let status = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | threading, nil)
        guard status == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(handle)
            throw Failure(code: status, message: "\(path): \(message)")
        }
        sqlite3_busy_timeout(handle, 2000)
    }

    /// close_v2: a statement still alive keeps the connection until it is finalized.
    deinit { sqlite3_close_v2(handle) }

    /// Runs statements without parameters (schema).
    package func execute(_ sql: String) throws {
        let status = sqlite3_exec(handle, sql, nil, nil, nil)
        guard status == SQLITE_OK else { throw failure(status) }
    }

    /// Runs one statement; returns the number of rows it changed.
    @discardableResult
    package func run(_ sql: String, _ values: [Value] = []) throws -> Int {
        _ = try withStatement(sql, values) { statement in
            let status = sqlite3_step(statement)
            guard status == SQLITE_DONE || status == SQLITE_ROW else { throw failure(status) }
        }
        return Int(sqlite3_changes(handle))
    }

    /// Runs one query; every row's columns, in order.
    package func query(_ sql: String, _ values: [Value] = []) throws -> [[Value]] {
        try withStatement(sql, values) { statement in
            var rows: [[Value]] = []
            while true {
                let status = sqlite3_step(statement)
                if status == SQLITE_DONE { break }
                guard status == SQLITE_ROW else { throw failure(status) }
                rows.append((0..<sqlite3_column_count(statement)).map { column(statement, $0) })
            }
            return rows
        }
    }

    /// A statement parsed once and run many times (a row insert in a loop): no SQL parsing per run.
    package final class Statement {
        fileprivate let pointer: OpaquePointer
        fileprivate init(_ pointer: OpaquePointer) { self.pointer = pointer }
        deinit { sqlite3_finalize(pointer) }
    }

    package func prepare(_ sql: String) throws -> Statement {
        var statement: OpaquePointer?
        let prepared = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard prepared == SQLITE_OK, let statement else { throw failure(prepared) }
        return Statement(statement)
    }

    /// Runs a prepared statement that returns no rows with `values` bound.
    package func run(_ statement: Statement, _ values: [Value]) throws {
        defer {
            sqlite3_reset(statement.pointer)
            sqlite3_clear_bindings(statement.pointer)
        }
        try bind(values, to: statement.pointer)
        let status = sqlite3_step(statement.pointer)
        guard status == SQLITE_DONE || status == SQLITE_ROW else { throw failure(status) }
    }

    private func withStatement<Result>(_ sql: String, _ values: [Value],
                                       _ body: (OpaquePointer) throws -> Result) throws -> Result
    {
        var statement: OpaquePointer?
        let prepared = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard prepared == SQLITE_OK, let statement else { throw failure(prepared) }
        defer { sqlite3_finalize(statement) }
        try bind(values, to: statement)
        return try body(statement)
    }

    private func bind(_ values: [Value], to statement: OpaquePointer) throws {
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let status: Int32
            switch value {
            case var .text(text):
                status = text.withUTF8 { utf8 in
                    utf8.withMemoryRebound(to: CChar.self) { prism_sqlite_bind_text(statement, index, $0.baseAddress, Int32($0.count)) }
                }
            case let .blob(bytes): status = bytes.withUnsafeBytes { prism_sqlite_bind_blob(statement, index, $0.baseAddress, Int32($0.count)) }
            case let .integer(number): status = sqlite3_bind_int64(statement, index, number)
            case .null: status = sqlite3_bind_null(statement, index)
            }
            guard status == SQLITE_OK else { throw failure(status) }
        }
    }

    private func column(_ statement: OpaquePointer, _ index: Int32) -> Value {
        switch sqlite3_column_type(statement, index) {
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, index))
        case SQLITE_TEXT: return .text(String(cString: sqlite3_column_text(statement, index)))
        case SQLITE_BLOB:
            let count = Int(sqlite3_column_bytes(statement, index))
            guard let base = sqlite3_column_blob(statement, index), count > 0 else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: base, count: count)))
        default: return .null
        }
    }

    private func failure(_ status: Int32) -> Failure {
        // The extended code's low byte is the primary code (SQLITE_CONSTRAINT, ...).
        Failure(code: status & 0xFF, message: String(cString: sqlite3_errmsg(handle)))
    }
}
