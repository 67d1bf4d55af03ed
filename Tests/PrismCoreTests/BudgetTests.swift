import Logging
import Synchronization
import XCTest
import PrismCore

/// Budgets' pure logic with made-up times: period boundaries, scopes, the refusal rule, warnings,
/// and the service over in-memory counters across a period's end.
final class BudgetTests: XCTestCase {
    /// Milliseconds since the epoch of a UTC time.
    func at(_ year: Int64, _ month: Int64, _ day: Int64, _ hour: Int64 = 0, _ minute: Int64 = 0) -> UInt64 {
        UInt64(CivilDate(year: year, month: month, day: day).dayNumber * 86_400_000 + hour * 3_600_000 + minute * 60_000)
    }

    func testCivilDatesRoundTrip() {
        XCTAssertEqual(CivilDate(day: 0), CivilDate(year: 1970, month: 1, day: 1))
        XCTAssertEqual(CivilDate(year: 2000, month: 3, day: 1).dayNumber, 11_017)
        XCTAssertEqual(CivilDate(year: 2024, month: 2, day: 29).text, "2024-02-29")
        for day in stride(from: -800_000 as Int64, to: 800_000, by: 997) {
            let date = CivilDate(day: day)
            XCTAssertEqual(date.dayNumber, day)
        }
    }

    func testPeriodsEndAtUTCCalendarBoundaries() {
        let now = at(2026, 12, 6, 23, 59) // a Sunday
        XCTAssertEqual(BudgetPeriod.daily.window(at: now).id, "d2026-12-06")
        XCTAssertEqual(BudgetPeriod.daily.window(at: now).endsAt, at(2026, 12, 7))
        XCTAssertEqual(BudgetPeriod.daily.window(at: at(2026, 12, 7)).id, "d2026-12-07")
        // Weeks start on Monday: Sunday the 6th is in the week of Monday the 30th of November.
        XCTAssertEqual(BudgetPeriod.weekly.window(at: now).id, "w2026-11-30")
        XCTAssertEqual(BudgetPeriod.weekly.window(at: now).endsAt, at(2026, 12, 7))
        XCTAssertEqual(BudgetPeriod.weekly.window(at: at(2026, 12, 7)).id, "w2026-12-07")
        XCTAssertEqual(BudgetPeriod.monthly.window(at: now).id, "m2026-12")
        XCTAssertEqual(BudgetPeriod.monthly.window(at: now).endsAt, at(2027, 1, 1))
        XCTAssertEqual(BudgetPeriod.monthly.window(at: at(2024, 2, 29, 12)).endsAt, at(2024, 3, 1))
        XCTAssertEqual(BudgetPeriod.monthly.window(at: at(2027, 1, 1) - 1).id, "m2026-12")
        XCTAssertEqual(BudgetPeriod.total.window(at: now).id, "total")
        XCTAssertEqual(BudgetPeriod.total.window(at: now).endsAt, 0)
    }

    func settings() -> BudgetSettings {
        var settings = BudgetSettings()
        settings.organization = BudgetLimit(limitUSD: 100, period: .monthly, hard: true)
        settings.teams = ["team-a": BudgetLimit(limitUSD: 10, period: .weekly, hard: true)]
        settings.users = ["*": BudgetLimit(limitUSD: 1, period: .daily, hard: true),
                          "vip": BudgetLimit(limitUSD: 5, period: .daily, hard: false)]
        settings.keys = ["k:1": BudgetLimit(limitUSD: 2, period: .total, hard: true)]
        settings.models = ["gpt-4o": BudgetLimit(limitUSD: 50, period: .monthly, hard: true)]
        return settings
    }

    func testClaimsFollowTheSubject() {
        let now = at(2026, 12, 6, 12)
        let claims = settings().claims(for: BudgetSubject(team: "team-a", user: "u-1", key: "k:1", model: "gpt-4o"), now: now)
        XCTAssertEqual(claims.map(\.scope), [.org, .team, .user, .key, .model])
        XCTAssertEqual(claims.map(\.counterKey), [
            "budget:org:org:m2026-12", "budget:team:team-a:w2026-11-30", "budget:user:u-1:d2026-12-06",
            "budget:key:k%3A1:total", "budget:model:gpt-4o:m2026-12",
        ])
        // A named user's own budget wins over "*"; nobody unnamed, no team without a budget.
        let vip = settings().claims(for: BudgetSubject(team: "team-b", user: "vip", key: "", model: "gpt-4o-mini"), now: now)
        XCTAssertEqual(vip.map(\.scope), [.org, .user])
        XCTAssertFalse(vip[1].limit.hard)
        XCTAssertTrue(BudgetSettings().claims(for: BudgetSubject(team: "t", user: "u", key: "k", model: "m"), now: now).isEmpty)
    }

    func testOnlyASpentHardBudgetRefuses() {
        let claims = settings().claims(for: BudgetSubject(team: "team-a", user: "vip", key: "", model: ""), now: at(2026, 12, 6))
        // The soft user budget is over its limit: no refusal.
        XCTAssertEqual(BudgetSettings.decide(claims, spent: [0, 9_999_999_999, 6_000_000_000]), .allow)
        // The team's hard budget reached exactly: refused, naming it.
        guard case let .refuse(claim, spent) = BudgetSettings.decide(claims, spent: [0, 10_000_000_000, 0]) else {
            return XCTFail("expected a refusal")
        }
        XCTAssertEqual(claim.scope, .team)
        XCTAssertEqual(spent, 10_000_000_000)
    }

    func testCrossingsAreToldOnceAtTheThresholdAndTheLimit() {
        var settings = settings()
        settings.warnThreshold = 0.5
        let claims = settings.claims(for: BudgetSubject(team: "", user: "", key: "k:1", model: ""), now: 0)
        let key = claims[1] // $2
        XCTAssertTrue(settings.crossings([key], added: 100, totals: [900_000_000]).isEmpty)
        let warn = settings.crossings([key], added: 200_000_000, totals: [1_000_000_000])
        XCTAssertEqual(warn.count, 1)
        XCTAssertFalse(warn[0].reachedLimit)
        XCTAssertTrue(settings.crossings([key], added: 1, totals: [1_000_000_001]).isEmpty)
        let limit = settings.crossings([key], added: 500_000_000, totals: [2_100_000_000])
        XCTAssertEqual(limit.count, 1)
        XCTAssertTrue(limit[0].reachedLimit)
        XCTAssertTrue(settings.crossings([key], added: 1, totals: [2_100_000_001]).isEmpty)
    }

    func testTheServiceRefusesUntilThePeriodEnds() {
        var configured = BudgetSettings()
        configured.users = ["*": BudgetLimit(limitUSD: 0.01, period: .daily, hard: true)]
        // The shared state expires counters on the real clock (a day after their period): the
        // injected days lie ahead of any real date, or the test would expire with its own dates.
        let clock = Atomic<UInt64>(at(2099, 12, 6, 23, 58))
        let state = SharedStateService(settings: nil, logger: Logger(label: "test"))
        let service = BudgetService(settings: configured, state: state, logger: Logger(label: "test"),
                                    clock: { clock.load(ordering: .relaxed) })
        let subject = BudgetSubject(team: "", user: "u-1", key: "", model: "")
        func decide() -> BudgetDecision {
            let answer = Mutex<BudgetDecision?>(nil)
            service.check(subject) { claims, decision in
                answer.withLock { $0 = decision }
                if decision == .allow { service.record(claims, cost: 0.006) }
            }
            return answer.withLock { $0 }!
        }
        XCTAssertEqual(decide(), .allow) // 0.006
        XCTAssertEqual(decide(), .allow) // 0.012: the crossing request completes
        guard case .refuse = decide() else { return XCTFail("the third request is refused") }
        // Another user has a budget of their own.
        let other = Mutex<BudgetDecision?>(nil)
        service.check(BudgetSubject(team: "", user: "u-2", key: "", model: "")) { _, decision in other.withLock { $0 = decision } }
        XCTAssertEqual(other.withLock { $0 }, .allow)
        // Midnight UTC: a new day, a new budget.
        clock.store(at(2099, 12, 7), ordering: .relaxed)
        XCTAssertEqual(decide(), .allow)
    }
}
