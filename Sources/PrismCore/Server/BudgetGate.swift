import NIOCore
import NIOHTTP1
import PrismSupport

// Budgets on the request path: checked after the middleware (which name the key and its owner)
// and before routing; the request's cost is added when it completes (ProxyResponses.complete).
extension ProxyRequest {
    /// The end user: `x-prism-user-id`, else the body's `user`.
    var endUserIdentity: String {
        head.headers.first(name: "x-prism-user-id").map { $0.clipped(toCharacters: 256) } ?? endUser
    }

    func checkBudgets(_ budgets: BudgetService) {
        let subject = BudgetSubject(team: attributes["key.owner"] ?? "", user: endUserIdentity,
                                    key: attributes["key.name"] ?? "", model: clientModel)
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        let eventLoop = self.eventLoop
        budgets.check(subject) { claims, decision in
            // In memory the answer comes at once, on this loop; from Redis, on its thread.
            if eventLoop.inEventLoop {
                bound.value.budgetsChecked(claims, decision)
            } else {
                eventLoop.execute { bound.value.budgetsChecked(claims, decision) }
            }
        }
    }

    private func budgetsChecked(_ claims: [BudgetClaim], _ decision: BudgetDecision) {
        guard !finished else { return }
        budgetClaims = claims
        guard case let .refuse(claim, spent) = decision else { return route() }
        var headers: [(String, String)] = []
        var resets = ""
        if claim.periodEndsAt > 0 {
            let seconds = (claim.periodEndsAt - min(claim.periodEndsAt, wallClockMilliseconds()) + 999) / 1000
            headers.append(("retry-after", String(seconds)))
            resets = " It resets at the start of the next \(claim.limit.period.rawValue) period (UTC), in \(seconds) s."
        }
        let who = claim.scope == .org ? "The organization's" : "The \(claim.scope.rawValue) '\(claim.name)''s"
        fail(.tooManyRequests, "budget_exceeded", "budget_exceeded",
             "\(who) \(claim.limit.period.rawValue) budget of \(BudgetService.usd(claim.limit.limitNanoUSD)) USD is spent "
                 + "(\(BudgetService.usd(spent)) USD).\(resets)", extraHeaders: headers)
    }
}
