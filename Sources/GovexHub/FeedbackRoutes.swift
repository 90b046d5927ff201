import GovexAPI
import GovexPostgres
import Hummingbird

/// A node's discrepancy feedback stream (see docs/api.md and docs/one-source.md).
extension HubServer {
    public static let maxFeedbackPerResponse = 1_000

    func addFeedbackRoutes(to router: Router<HubRequestContext>, authenticated: @escaping Authenticated) {
        let pool = self.pool
        router.get(RouterPath(HubRoute.discrepancies)) { request, context -> Response in
            try await authenticated(context) { node in
                let query = request.uri.queryParameters
                guard let after = Int64(query["after"].map(String.init) ?? "0"), after >= 0 else {
                    return Self.error(.badRequest, "after must be the last change number received, a non-negative integer")
                }
                let limit = min(max(Int(query["limit"].map(String.init) ?? "") ?? 500, 1), Self.maxFeedbackPerResponse)
                let views = try await pool.withConnection { sql in try await HubStore.feedback(for: node, after: after, limit: limit, on: sql) }
                let through = views.last?.row.change ?? after
                return try Self.encoded(DiscrepancyPage(through: through, discrepancies: views.map { $0.row.view(hidden: $0.hidden) }))
            }
        }
    }
}
