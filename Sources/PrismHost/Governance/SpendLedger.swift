import Dispatch
import Logging
import PrismStorage
import PrismWire
import Synchronization

/// Every request's spend, kept across restarts: key, owner, user, model, provider, organization, tokens, cost,
/// status and latency, written off the hot path (a request appends to a buffer under a short lock;
/// a queue writes the buffer to SQLite in one transaction every `flushInterval`), with the rows
/// older than `retention` deleted. Each replica keeps its own ledger (its own file on its own
/// volume); `GET /-/spend` answers for this replica, and a fleet's totals are the sum of its
/// replicas' answers (README). Costs are stored as integer nano-dollars, so sums are exact.
package final class SpendLedger: Sendable {
    package struct Entry: Sendable {
        var at: UInt64 // wall clock, ms
        var requestID: String
        var key: String
        var owner: String
        var user: String
        var model: String
        var provider: String
        var tokensIn: UInt64
        var tokensOut: UInt64
        var cost: Double?
        var status: Int
        var latencyMicroseconds: UInt64
        /// The organization whose configuration served it ("-": the file's).
        var org: String = "-"

        package init(at: UInt64, requestID: String, key: String, owner: String, user: String, model: String, provider: String,
                     tokensIn: UInt64, tokensOut: UInt64, cost: Double?, status: Int, latencyMicroseconds: UInt64,
                     org: String = "-")
        {
            self.at = at
            self.requestID = requestID
            self.key = key
            self.owner = owner
            self.user = user
            self.model = model
            self.provider = provider
            self.tokensIn = tokensIn
            self.tokensOut = tokensOut
            self.cost = cost
            self.status = status
            self.latencyMicroseconds = latencyMicroseconds
            self.org = org
        }
    }

    package struct Total: Sendable {
        package let group: String
        package let requests: Int64
        package let tokensIn: Int64
        package let tokensOut: Int64
        package let costNanoUSD: Int64
    }

    package static let groupColumns: [String: String] = ["key": "key", "owner": "owner", "user": "user", "model": "model",
                                                 "provider": "provider", "org": "org"]

    private final class Store: @unchecked Sendable {
        let database: SQLiteDatabase
        /// The inserts of one row and of `rowsPerInsert` rows, parsed once (on the queue, at the
        /// first flush).
        var insert: SQLiteDatabase.Statement?
        var insertMany: SQLiteDatabase.Statement?
        init(_ database: SQLiteDatabase) { self.database = database }
        // The statements are finalized before their connection closes.
        deinit {
            insert = nil
            insertMany = nil
        }
    }

    private let store: Store
    private let queue: DispatchQueue
    private let buffer = Mutex<[Entry]>([])
    private let retentionMilliseconds: UInt64
    private let logger: Logger
    private let clock: @Sendable () -> UInt64
    private let lastPrune = Atomic<UInt64>(0)
    /// Past this many buffered rows (the disk is stuck), new ones are dropped and counted.
    static let maximumBuffered = 100_000
    let dropped = Atomic<Int>(0)

    package init(path: String, retention: Duration, flushInterval: Duration, logger: Logger,
         clock: @escaping @Sendable () -> UInt64 = { wallClockMilliseconds() }) throws
    {
        let database = try SQLiteDatabase(path: path, serializedByOwner: true) // every call is on `queue`
        // NORMAL: a commit does not wait for fsync (the WAL is synced at checkpoints). A power
        // cut can lose the last commits, as it loses the rows still buffered in memory anyway;
        // with a commit every 50 ms, FULL would be twenty fsyncs a second.
        try database.execute("""
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=NORMAL;
            CREATE TABLE IF NOT EXISTS spend (
                at_ms INTEGER NOT NULL, request_id TEXT NOT NULL, key TEXT NOT NULL, owner TEXT NOT NULL,
                user TEXT NOT NULL, model TEXT NOT NULL, provider TEXT NOT NULL, tokens_in INTEGER NOT NULL,
                tokens_out INTEGER NOT NULL, cost_nano_usd INTEGER, status INTEGER NOT NULL,
                latency_us INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS spend_at ON spend(at_ms);
            """)
        // Ledgers written before organizations get the column (their rows were the file's).
        if !(try database.query("PRAGMA table_info(spend)").contains { $0[1].text == "org" }) {
            try database.execute("ALTER TABLE spend ADD COLUMN org TEXT NOT NULL DEFAULT '-'")
        }
        store = Store(database)
        retentionMilliseconds = UInt64(retention.milliseconds)
        self.logger = logger
        self.clock = clock
        let queue = DispatchQueue(label: "prism.spend-ledger")
        self.queue = queue
        let interval = max(10, flushInterval.milliseconds)
        let timer = DispatchSource.makeTimerSource(queue: queue)
        // The ledger lives as long as the process (the runtime holds it): the timer is never cancelled.
        timerBox = TimerBox(timer)
        timer.schedule(deadline: .now() + .milliseconds(Int(interval)), repeating: .milliseconds(Int(interval)),
                       leeway: .milliseconds(Int(max(1, interval / 4))))
        timer.setEventHandler { [weak self] in self?.flushOnQueue() }
        timer.resume()
    }

    private final class TimerBox: @unchecked Sendable {
        let timer: DispatchSourceTimer
        init(_ timer: DispatchSourceTimer) { self.timer = timer }
    }

    private let timerBox: TimerBox

    /// The hot path: one append under a short lock.
    package func record(_ entry: Entry) {
        let accepted = buffer.withLock { rows -> Bool in
            guard rows.count < Self.maximumBuffered else { return false }
            rows.append(entry)
            return true
        }
        if !accepted { dropped.add(1, ordering: .relaxed) }
    }

    /// Writes what is buffered now (a query flushes first, so it sees every finished request).
    package func flush() { queue.sync { flushOnQueue() } }

    private func flushOnQueue() {
        let rows = buffer.withLock { rows -> [Entry] in
            defer { rows.removeAll(keepingCapacity: true) }
            return rows
        }
        let database = store.database
        do {
            if !rows.isEmpty {
                try database.execute("BEGIN")
                // Statements parsed once, run per row or per `rowsPerInsert` rows: no SQL is
                // parsed per request, and a statement of many rows costs about a third less a
                // row in SQLite than one row a statement (callgrind: 13.0k -> 8.6k instructions).
                let insert = try store.insert ?? database.prepare(Self.insertSQL(rows: 1))
                store.insert = insert
                var values: [SQLiteDatabase.Value] = []
                values.reserveCapacity(13 * Self.rowsPerInsert)
                var next = 0
                if rows.count >= Self.rowsPerInsert {
                    let insertMany = try store.insertMany ?? database.prepare(Self.insertSQL(rows: Self.rowsPerInsert))
                    store.insertMany = insertMany
                    while rows.count - next >= Self.rowsPerInsert {
                        values.removeAll(keepingCapacity: true)
                        for row in rows[next..<(next + Self.rowsPerInsert)] { Self.append(row, to: &values) }
                        try database.run(insertMany, values)
                        next += Self.rowsPerInsert
                    }
                }
                for row in rows[next...] {
                    values.removeAll(keepingCapacity: true)
                    Self.append(row, to: &values)
                    try database.run(insert, values)
                }
                try database.execute("COMMIT")
            }
            try pruneIfDue()
        } catch {
            _ = try? database.execute("ROLLBACK")
            logger.error("spend ledger: \(rows.count) row(s) not written: \(error)")
        }
    }

    package static let rowsPerInsert = 20

    private static func insertSQL(rows: Int) -> String {
        "INSERT INTO spend (at_ms, request_id, key, owner, user, model, provider, tokens_in, tokens_out, "
            + "cost_nano_usd, status, latency_us, org) VALUES "
            + Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", count: rows).joined(separator: ", ")
    }

    /// One row's 13 values, in the inserts' column order.
    private static func append(_ row: Entry, to values: inout [SQLiteDatabase.Value]) {
        values.append(.integer(Int64(clamping: row.at)))
        values.append(.text(row.requestID))
        values.append(.text(row.key))
        values.append(.text(row.owner))
        values.append(.text(row.user))
        values.append(.text(row.model))
        values.append(.text(row.provider))
        values.append(.integer(Int64(clamping: row.tokensIn)))
        values.append(.integer(Int64(clamping: row.tokensOut)))
        values.append(row.cost.map { .integer(Int64(($0 * 1_000_000_000).rounded())) } ?? .null)
        values.append(.integer(Int64(row.status)))
        values.append(.integer(Int64(clamping: row.latencyMicroseconds)))
        values.append(.text(row.org))
    }

    /// Rows older than the retention go, at most once a minute.
    private func pruneIfDue() throws {
        let now = clock()
        guard retentionMilliseconds > 0, now >= lastPrune.load(ordering: .relaxed) + 60_000 else { return }
        lastPrune.store(now, ordering: .relaxed)
        _ = try store.database.run("DELETE FROM spend WHERE at_ms < ?",
                                   [.integer(Int64(clamping: now > retentionMilliseconds ? now - retentionMilliseconds : 0))])
    }

    /// Prunes now (for tests with an injected clock).
    package func prune() throws {
        lastPrune.store(0, ordering: .relaxed)
        try queue.sync { try pruneIfDue() }
    }

    /// How many rows the file holds, without writing what is buffered (for tests of the timer).
    package func writtenRowCount() throws -> Int64 {
        try queue.sync { try store.database.query("SELECT COUNT(*) FROM spend")[0][0].integer }
    }

    /// Totals per `groupBy` value between `from` and `to` (wall clock ms, inclusive from).
    package func totals(groupBy: String, from: UInt64?, to: UInt64?) throws -> [Total] {
        guard let column = Self.groupColumns[groupBy] else { return [] }
        flush()
        return try queue.sync {
            try store.database.query("""
                SELECT \(column), COUNT(*), SUM(tokens_in), SUM(tokens_out), COALESCE(SUM(cost_nano_usd), 0)
                FROM spend WHERE at_ms >= ? AND at_ms < ? GROUP BY \(column) ORDER BY 5 DESC, 1
                """, [.integer(Int64(clamping: from ?? 0)), .integer(Int64(clamping: to ?? UInt64(Int64.max)))])
            .map { row in
                Total(group: row[0].text, requests: row[1].integer, tokensIn: row[2].integer, tokensOut: row[3].integer,
                      costNanoUSD: row[4].integer)
            }
        }
    }

    /// A query time: milliseconds since the epoch, or a UTC date `YYYY-MM-DD` (its midnight) or
    /// time `YYYY-MM-DDTHH:MM:SSZ`.
    package static func time(_ text: String) -> UInt64? {
        if let value = UInt64(text) { return value }
        guard let seconds = CivilDate.epochSeconds(iso: text), seconds >= 0 else { return nil }
        return UInt64(seconds) * 1000
    }
}

extension SpendLedger.Entry {
    package init(_ outcome: RequestOutcome, at: UInt64, org: String) {
        self.init(at: at, requestID: outcome.requestID, key: outcome.key, owner: outcome.owner, user: outcome.user,
                  model: outcome.model, provider: outcome.provider, tokensIn: outcome.usage.input_tokens,
                  tokensOut: outcome.usage.output_tokens, cost: outcome.cost, status: outcome.status,
                  latencyMicroseconds: outcome.latencyNanoseconds / 1000, org: org)
    }
}
