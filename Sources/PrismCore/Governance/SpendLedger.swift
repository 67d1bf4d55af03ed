import CPrismSystem
import Dispatch
import Logging
import PrismStorage
import PrismSupport
import PrismWire
import Synchronization

/// Every request's spend, kept across restarts: key, owner, user, model, provider, organization, tokens, cost,
/// status and latency, written off the hot path (a request appends to a buffer under a short lock;
/// a background thread writes it to SQLite when a CPU is free, see `init`), with the rows
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

    static let groupColumns: [String: String] = ["key": "key", "owner": "owner", "user": "user", "model": "model",
                                                 "provider": "provider", "org": "org"]

    /// The connection and its statements. Only touched under `store`'s lock.
    private final class Store: @unchecked Sendable {
        let database: SQLiteDatabase
        /// The inserts of one row and of `rowsPerInsert` rows, parsed once (at the first write).
        var insert: SQLiteDatabase.Statement?
        var insertMany: SQLiteDatabase.Statement?
        /// The wall clock (ms) of the last retention pass.
        var lastPrune: UInt64 = 0
        init(_ database: SQLiteDatabase) { self.database = database }
        // The statements are finalized before their connection closes.
        deinit {
            insert = nil
            insertMany = nil
        }
    }

    /// The rows handed to the writers, oldest first; the first `head` of `rows` are already taken.
    private struct Waiting {
        var rows: [Entry] = []
        var head = 0
        /// When the last waiting row was taken (monotonic ns): old while rows wait means the
        /// background writer is not getting the CPU.
        var caughtUpAt: UInt64
        var count: Int { rows.count - head }
    }

    /// Three locks, always taken in this order: `store`, `waiting`, `arriving`. A request takes
    /// only `arriving`, which no idle-priority thread ever holds: a thread at `SCHED_IDLE`
    /// preempted inside a lock a request needs would stall that request until a CPU fell idle.
    private let store: Mutex<Store>
    private let waiting: Mutex<Waiting>
    private let arriving = Mutex<[Entry]>([])
    private let retentionMilliseconds: UInt64
    private let flushNanoseconds: UInt64
    private let logger: Logger
    private let clock: @Sendable () -> UInt64
    /// Past this many rows not written (the disk is stuck), new ones are dropped and counted.
    static let maximumBuffered = 100_000
    let dropped = Atomic<Int>(0)
    /// Rows the background writer takes in one transaction: about a quarter of a millisecond of
    /// SQLite, well inside one time slice. A writer at normal priority (the catch-up, a query,
    /// the shutdown) waits for the store while the background writer holds it; when every CPU
    /// is busy, a `SCHED_IDLE` thread preempted there runs again only after its next turn, which
    /// took 0.5-5.5 s in `SpendLedgerTests` (2 cores, 4 spinning threads). Requests never wait:
    /// they take only `arriving`.
    package static let rowsPerTransaction = 100
    /// Whether the background writer runs at `SCHED_IDLE` (false: it could not take the policy
    /// and runs at normal priority).
    package let writerIsIdlePriority = Atomic<Bool>(false)
    /// Rows the normal-priority timer wrote because the background writer had fallen behind.
    package let rowsWrittenCatchingUp = Atomic<Int>(0)
    private let writerWakeUp = DispatchSemaphore(value: 0)
    private let nextCatchUpCheck = Atomic<UInt64>(0)

    /// Rows are written so that the SQLite work does not take a CPU from the requests (at one
    /// connection the old once-a-second burst of 15-20 ms doubled p99):
    /// - every `tick` (50 ms, or the flush interval if shorter) a timer at normal priority hands
    ///   the rows that arrived to a background thread at `SCHED_IDLE`, which writes them,
    ///   `rowsPerTransaction` rows a transaction. It runs only on a CPU nothing else wants.
    /// - every `flushInterval` the timer writes everything waiting itself if the background
    ///   writer has left rows waiting for a whole interval: on a saturated machine an
    ///   idle-policy thread gets almost no CPU, and rows must not pile up until they are dropped.
    /// A query, and the shutdown, write everything first (`flush`).
    package init(path: String, retention: Duration, flushInterval: Duration, logger: Logger,
         clock: @escaping @Sendable () -> UInt64 = { wallClockMilliseconds() }) throws
    {
        let database = try SQLiteDatabase(path: path, serializedByOwner: true) // every call is under `store`'s lock
        // NORMAL: a commit does not wait for fsync (the WAL is synced at checkpoints). A power
        // cut can lose the last commits, as it loses the rows still buffered in memory anyway.
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
        store = Mutex(Store(database))
        waiting = Mutex(Waiting(caughtUpAt: monotonicNanoseconds()))
        retentionMilliseconds = UInt64(retention.milliseconds)
        let interval = max(10, flushInterval.milliseconds)
        flushNanoseconds = UInt64(interval) * 1_000_000
        self.logger = logger
        self.clock = clock
        let queue = DispatchQueue(label: "prism.spend-ledger")
        let timer = DispatchSource.makeTimerSource(queue: queue)
        // The ledger lives as long as the process (the runtime holds it): the timer is never
        // cancelled, and the background writer ends when the ledger is gone (tests make several).
        timerBox = TimerBox(timer)
        let tick = min(50, interval)
        timer.schedule(deadline: .now() + .milliseconds(Int(tick)), repeating: .milliseconds(Int(tick)),
                       leeway: .milliseconds(Int(tick / 2)))
        nextCatchUpCheck.store(monotonicNanoseconds() + flushNanoseconds, ordering: .relaxed)
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            if handOver() > 0 { writerWakeUp.signal() }
            let now = monotonicNanoseconds()
            if now >= nextCatchUpCheck.load(ordering: .relaxed) { // only this queue touches it
                nextCatchUpCheck.store(now + flushNanoseconds, ordering: .relaxed)
                catchUpIfBehind()
            }
        }
        timer.resume()
        BackgroundWriter.start(self, wakeUp: writerWakeUp)
    }

    // Wakes the background writer, which then finds its ledger gone and ends.
    deinit { writerWakeUp.signal() }

    private final class TimerBox: @unchecked Sendable {
        let timer: DispatchSourceTimer
        init(_ timer: DispatchSourceTimer) { self.timer = timer }
    }

    private let timerBox: TimerBox

    /// The hot path: one append under a short lock.
    package func record(_ entry: Entry) {
        let accepted = arriving.withLock { rows -> Bool in
            guard rows.count < Self.maximumBuffered else { return false }
            rows.append(entry)
            return true
        }
        if !accepted { dropped.add(1, ordering: .relaxed) }
    }

    /// Moves the rows that arrived to the writers: how many now wait.
    @discardableResult
    private func handOver() -> Int {
        waiting.withLock { waiting in
            let rows = arriving.withLock { rows -> [Entry] in
                defer { rows.removeAll(keepingCapacity: true) }
                return rows
            }
            guard !rows.isEmpty else { return waiting.count }
            if waiting.count == 0 { waiting.caughtUpAt = monotonicNanoseconds() }
            let room = max(0, Self.maximumBuffered - waiting.count)
            if rows.count > room { dropped.add(rows.count - room, ordering: .relaxed) }
            waiting.rows.append(contentsOf: rows.prefix(room))
            return waiting.count
        }
    }

    /// Writes everything that arrived until now, at the caller's priority (a query flushes
    /// first, so it sees every finished request).
    func flush() {
        store.withLock { store in writeAllWaiting(store) }
    }

    /// The background writer, woken by the timer: what waits, `rowsPerTransaction` rows a
    /// transaction (the lock is let go between them).
    fileprivate func writeInSmallTransactions() {
        while store.withLock({ store in write(take(Self.rowsPerTransaction), store) }) == Self.rowsPerTransaction {}
    }

    /// Every flush interval, at normal priority: writes everything waiting when rows have waited
    /// for the background writer a whole interval; the retention pass.
    private func catchUpIfBehind() {
        let behind = waiting.withLock { $0.count > 0 && monotonicNanoseconds() &- $0.caughtUpAt >= flushNanoseconds }
        store.withLock { store in
            if behind {
                var written = 0
                while case let count = write(take(Int.max), store), count > 0 { written += count }
                rowsWrittenCatchingUp.add(written, ordering: .relaxed)
            }
            do { try pruneIfDue(store) } catch { logger.error("spend ledger: retention pass failed: \(error)") }
        }
    }

    private func writeAllWaiting(_ store: Store) {
        handOver()
        while write(take(Int.max), store) > 0 {}
    }

    /// Up to `limit` of the oldest waiting rows, taken.
    private func take(_ limit: Int) -> ArraySlice<Entry> {
        waiting.withLock { waiting in
            let count = min(limit, waiting.count)
            guard count > 0 else { return [] }
            if count == waiting.count { waiting.caughtUpAt = monotonicNanoseconds() }
            let rows = waiting.rows[waiting.head..<(waiting.head + count)]
            waiting.head += count
            if waiting.head == waiting.rows.count {
                waiting.rows.removeAll(keepingCapacity: true)
                waiting.head = 0
            } else if waiting.head >= 4096, waiting.head * 2 >= waiting.rows.count {
                // Rows keep arriving while a writer drains: the taken front goes now and then.
                waiting.rows.removeFirst(waiting.head)
                waiting.head = 0
            }
            return rows
        }
    }

    /// Writes `rows` in one transaction (the caller holds `store`'s lock): how many were taken.
    @discardableResult
    private func write(_ rows: ArraySlice<Entry>, _ store: Store) -> Int {
        guard !rows.isEmpty else { return 0 }
        let database = store.database
        do {
            try database.execute("BEGIN")
            // Statements parsed once, run per row or per `rowsPerInsert` rows: no SQL is
            // parsed per request, and a statement of many rows costs about a third less a
            // row in SQLite than one row a statement (callgrind: 13.0k -> 8.6k instructions).
            let insert = try store.insert ?? database.prepare(Self.insertSQL(rows: 1))
            store.insert = insert
            var values: [SQLiteDatabase.Value] = []
            values.reserveCapacity(13 * Self.rowsPerInsert)
            var next = rows.startIndex
            if rows.count >= Self.rowsPerInsert {
                let insertMany = try store.insertMany ?? database.prepare(Self.insertSQL(rows: Self.rowsPerInsert))
                store.insertMany = insertMany
                while rows.endIndex - next >= Self.rowsPerInsert {
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
        } catch {
            _ = try? database.execute("ROLLBACK")
            logger.error("spend ledger: \(rows.count) row(s) not written: \(error)")
        }
        return rows.count
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

    /// Rows older than the retention go, at most once a minute (the caller holds `store`'s lock).
    private func pruneIfDue(_ store: Store) throws {
        let now = clock()
        guard retentionMilliseconds > 0, now >= store.lastPrune + 60_000 else { return }
        store.lastPrune = now
        _ = try store.database.run("DELETE FROM spend WHERE at_ms < ?",
                                   [.integer(Int64(clamping: now > retentionMilliseconds ? now - retentionMilliseconds : 0))])
    }

    /// Prunes now (for tests with an injected clock).
    package func prune() throws {
        try store.withLock { store in
            store.lastPrune = 0
            try pruneIfDue(store)
        }
    }

    /// How many rows the file holds, without writing what is waiting (for tests of the writers).
    package func writtenRowCount() throws -> Int64 {
        try store.withLock { store in try store.database.query("SELECT COUNT(*) FROM spend")[0][0].integer }
    }

    /// Totals per `groupBy` value between `from` and `to` (wall clock ms, inclusive from).
    package func totals(groupBy: String, from: UInt64?, to: UInt64?) throws -> [Total] {
        guard let column = Self.groupColumns[groupBy] else { return [] }
        return try store.withLock { store in
            writeAllWaiting(store)
            return try store.database.query("""
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
    init(_ outcome: RequestOutcome, at: UInt64, org: String) {
        self.init(at: at, requestID: outcome.requestID, key: outcome.key, owner: outcome.owner, user: outcome.user,
                  model: outcome.model, provider: outcome.provider, tokensIn: outcome.usage.input_tokens,
                  tokensOut: outcome.usage.output_tokens, cost: outcome.cost, status: outcome.status,
                  latencyMicroseconds: outcome.latencyNanoseconds / 1000, org: org)
    }
}

/// The ledger's background writer: a thread of its own at `SCHED_IDLE` that writes the rows the
/// timer hands it, and ends when its ledger is gone. It holds the ledger only while it writes.
private enum BackgroundWriter {
    static func start(_ ledger: SpendLedger, wakeUp: DispatchSemaphore) {
        let weakLedger = WeakLedger(ledger)
        startDetachedThread {
            weakLedger.ledger?.writerIsIdlePriority.store(prism_thread_set_idle_policy() == 0, ordering: .relaxed)
            while true {
                wakeUp.wait()
                guard let ledger = weakLedger.ledger else { return }
                ledger.writeInSmallTransactions()
            }
        }
    }

    private final class WeakLedger: @unchecked Sendable {
        weak var ledger: SpendLedger?
        init(_ ledger: SpendLedger) { self.ledger = ledger }
    }
}
