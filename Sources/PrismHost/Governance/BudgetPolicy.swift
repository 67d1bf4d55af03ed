import Synchronization

/// Budgets: spend limits per organization (the whole gateway), team (a key's `owner`), end user
/// (`x-prism-user-id` or the body's `user`), client key and model, each over a calendar period in
/// UTC. Pure logic: which budgets a request falls under, which counter each one adds to in the
/// current period, and whether spend so far refuses the request. Times are passed in.
extension BudgetPeriod {
    /// The period containing `milliseconds` (since the epoch, UTC): an identifier for counter keys
    /// and when it ends (0 for `total`, which never does).
    public func window(at milliseconds: UInt64) -> (id: String, endsAt: UInt64) {
        let day = Int64(milliseconds / 86_400_000)
        // The same day asks again and again: the answer is kept per period, for its day.
        let slot = ordinal
        if let cached = BudgetPeriod.recent.withLock({ $0[slot].day == day ? $0[slot] : nil }) {
            return (cached.id, cached.endsAt)
        }
        let window = computeWindow(day: day)
        BudgetPeriod.recent.withLock { $0[slot] = CachedWindow(day: day, id: window.id, endsAt: window.endsAt) }
        return window
    }

    private struct CachedWindow {
        var day: Int64
        var id: String
        var endsAt: UInt64
    }

    private static let recent = Mutex<[CachedWindow]>(Array(repeating: CachedWindow(day: Int64.min, id: "", endsAt: 0), count: 4))

    private func computeWindow(day: Int64) -> (id: String, endsAt: UInt64) {
        switch self {
        case .total:
            return ("total", 0)
        case .daily:
            return ("d" + CivilDate(day: day).text, UInt64(day + 1) * 86_400_000)
        case .weekly:
            // 1970-01-01 was a Thursday; weeks start on Monday.
            let monday = day - (day + 3) % 7
            return ("w" + CivilDate(day: monday).text, UInt64(monday + 7) * 86_400_000)
        case .monthly:
            let date = CivilDate(day: day)
            let next = date.month == 12 ? CivilDate(year: date.year + 1, month: 1, day: 1)
                : CivilDate(year: date.year, month: date.month + 1, day: 1)
            return ("m" + String(date.text.prefix(7)), UInt64(next.dayNumber) * 86_400_000)
        }
    }
}

/// A proleptic Gregorian date (days since 1970-01-01 and back), Howard Hinnant's algorithms.
package struct CivilDate: Equatable {
    let year: Int64, month: Int64, day: Int64

    package init(year: Int64, month: Int64, day: Int64) {
        self.year = year
        self.month = month
        self.day = day
    }

    package init(day number: Int64) {
        let z = number + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    }

    package var dayNumber: Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// `2027-01-31` or `2027-01-31T12:00:00Z` as seconds since the epoch (UTC).
    package static func epochSeconds(iso text: String) -> Int64? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[range] {
                guard byte >= 0x30 && byte <= 0x39 else { return nil }
                value = value * 10 + Int64(byte - 0x30)
            }
            return value
        }
        guard bytes.count == 10 || (bytes.count == 20 && bytes[10] == UInt8(ascii: "T") && bytes[19] == UInt8(ascii: "Z")),
              bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
              let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var seconds = CivilDate(year: year, month: month, day: day).dayNumber * 86_400
        if bytes.count == 20 {
            guard bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
                  let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
                  hour < 24, minute < 60, second < 60
            else { return nil }
            seconds += hour * 3600 + minute * 60 + second
        }
        return seconds
    }

    package var text: String {
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(year)-\(two(month))-\(two(day))"
    }
}

public enum BudgetScope: String, Sendable, CaseIterable {
    case org, team, user, key, model
}

/// Who a request is, for budgets ("" when unknown).
public struct BudgetSubject: Sendable {
    public var team: String
    public var user: String
    public var key: String
    public var model: String

    public init(team: String, user: String, key: String, model: String) {
        self.team = team
        self.user = user
        self.key = key
        self.model = model
    }
}

/// A budget that applies to a request, in the current period.
public struct BudgetClaim: Sendable, Equatable {
    public var scope: BudgetScope
    public var name: String
    public var limit: BudgetLimit
    /// The shared counter this period's spend adds to.
    public var counterKey: String
    public var periodEndsAt: UInt64
}

/// A budget's spend passed the warning threshold, or reached the limit, with one add.
public struct BudgetCrossing: Sendable {
    public var claim: BudgetClaim
    public var total: Int64
    public var reachedLimit: Bool
}

public enum BudgetDecision: Sendable, Equatable {
    case allow
    /// The first hard budget already spent.
    case refuse(BudgetClaim, spentNanoUSD: Int64)
}

extension BudgetSettings {
    /// The budgets `subject` falls under at `now`, in a fixed order (org, team, user, key, model).
    public func claims(for subject: BudgetSubject, now: UInt64) -> [BudgetClaim] {
        var claims: [BudgetClaim] = []
        claims.reserveCapacity(5)
        // Each period's window once per request (several budgets usually share one).
        var windowIDs: [String?] = [nil, nil, nil, nil]
        var windowEnds: [UInt64] = [0, 0, 0, 0]
        func add(_ scope: BudgetScope, _ name: String, _ table: [String: BudgetLimit]?) {
            let limit: BudgetLimit?
            if let table {
                guard !name.isEmpty, !table.isEmpty, let found = table[name] ?? table["*"] else { return }
                limit = found
            } else {
                limit = organization
            }
            guard let limit else { return }
            let slot = limit.period.ordinal
            if windowIDs[slot] == nil {
                let window = limit.period.window(at: now)
                windowIDs[slot] = window.id
                windowEnds[slot] = window.endsAt
            }
            let window = (id: windowIDs[slot]!, endsAt: windowEnds[slot])
            // ':' separates the parts of a counter key, so it is escaped in names (and '%' with it).
            var key = "budget:"
            key.reserveCapacity(24 + name.utf8.count + window.id.utf8.count)
            key += scope.rawValue
            key += ":"
            key += name.escapingColons
            key += ":"
            key += window.id
            claims.append(BudgetClaim(scope: scope, name: name, limit: limit, counterKey: key, periodEndsAt: window.endsAt))
        }
        add(.org, "org", nil)
        add(.team, subject.team, teams)
        add(.user, subject.user, users)
        add(.key, subject.key, keys)
        add(.model, subject.model, models)
        return claims
    }

    /// Refuses when a hard budget's spend has reached its limit: the request that crosses a limit
    /// completes, the next one is refused.
    public static func decide(_ claims: [BudgetClaim], spent: [Int64]) -> BudgetDecision {
        for (claim, value) in zip(claims, spent) where claim.limit.hard && value >= claim.limit.limitNanoUSD {
            return .refuse(claim, spentNanoUSD: value)
        }
        return .allow
    }

    /// The claims whose spend crossed the warning threshold (or the limit) with this add: each
    /// crossing is seen by exactly one request, since every add answers its own total.
    public func crossings(_ claims: [BudgetClaim], added delta: Int64, totals: [Int64]) -> [BudgetCrossing] {
        var out: [BudgetCrossing] = []
        for index in 0..<min(claims.count, totals.count) {
            let claim = claims[index], total = totals[index]
            let before = total - delta
            let limit = claim.limit.limitNanoUSD
            let warnAt = Int64((Double(limit) * warnThreshold).rounded())
            if before < limit && total >= limit {
                out.append(BudgetCrossing(claim: claim, total: total, reachedLimit: true))
            } else if before < warnAt && total >= warnAt {
                out.append(BudgetCrossing(claim: claim, total: total, reachedLimit: false))
            }
        }
        return out
    }
}

extension String {
    fileprivate var escapingColons: String {
        guard utf8.contains(where: { $0 == 0x3A || $0 == 0x25 }) else { return self }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count + 8)
        for byte in utf8 {
            switch byte {
            case 0x3A: bytes += [0x25, 0x33, 0x41] // %3A
            case 0x25: bytes += [0x25, 0x32, 0x35] // %25
            default: bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
