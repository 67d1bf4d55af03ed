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
        /// The bound text and blobs of the current run (reused run after run).
        fileprivate let values = BoundBytes()
        fileprivate init(_ pointer: OpaquePointer) { self.pointer = pointer }
        deinit { sqlite3_finalize(pointer) }
    }

    /// The bytes of a statement's text and blob parameters, bound without SQLite's copy
    /// (SQLITE_STATIC): SQLITE_TRANSIENT cost a malloc per value per run, five a spend-ledger row.
    /// They must stay put until the statement has stepped: one buffer, grown before any is bound.
    fileprivate final class BoundBytes {
        private var base = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 1)
        private var capacity = 256

        /// Room for `count` bytes (its previous contents are not kept).
        func reserve(_ count: Int) -> UnsafeMutableRawPointer {
            if count > capacity {
                base.deallocate()
                capacity = max(count, capacity * 2)
                base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 1)
            }
            return base
        }

        deinit { base.deallocate() }
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
        try bind(values, to: statement.pointer, bytes: statement.values)
        let status = sqlite3_step(statement.pointer)
        guard status == SQLITE_DONE || status == SQLITE_ROW else { throw failure(status) }
    }

    private func withStatement<Result>(_ sql: String, _ values: [Value],
                                       _ body: (OpaquePointer) throws -> Result) throws -> Result
    {
        var statement: OpaquePointer?
        let prepared = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard prepared == SQLITE_OK, let statement else { throw failure(prepared) }
        let bytes = BoundBytes()
        // The bound bytes outlive the statement (SQLite may look at them until it is finalized).
        defer {
            sqlite3_finalize(statement)
            withExtendedLifetime(bytes) {}
        }
        try bind(values, to: statement, bytes: bytes)
        return try body(statement)
    }

    private func bind(_ values: [Value], to statement: OpaquePointer, bytes: BoundBytes) throws {
        var total = 0
        for value in values {
            switch value {
            case let .text(text): total += text.utf8.count
            case let .blob(blob): total += blob.count
            default: break
            }
        }
        let base = bytes.reserve(total)
        var used = 0
        /// Copies one value's bytes into the buffer; where they start (never null: an empty text
        /// binds as '', not NULL).
        func place(_ source: UnsafeRawBufferPointer) -> UnsafeMutableRawPointer {
            let start = base + used
            if let from = source.baseAddress, source.count > 0 { start.copyMemory(from: from, byteCount: source.count) }
            used += source.count
            return start
        }
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let status: Int32
            switch value {
            case var .text(text):
                let count = text.utf8.count
                let start = text.withUTF8 { place(UnsafeRawBufferPointer($0)) }
                status = sqlite3_bind_text(statement, index, start.assumingMemoryBound(to: CChar.self), Int32(count), nil)
            case let .blob(blob):
                let start = blob.withUnsafeBytes { place($0) }
                status = sqlite3_bind_blob(statement, index, start, Int32(blob.count), nil)
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
