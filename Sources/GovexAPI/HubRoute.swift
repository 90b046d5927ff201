/// The hub's routes, named once for the hub that serves them and the agent and command line
/// that call them (docs/api.md). Paths with a parameter have a pattern for the router (`{id}`)
/// and a function for the caller.
public enum HubRoute {
    public static let ca = "/v1/ca"
    public static let enroll = "/v1/enroll"
    public static let batches = "/v1/batches"
    public static let catalog = "/v1/catalog"
    public static let catalogMine = "/v1/catalog/mine"
    public static let alarms = "/v1/alarms"
    public static let subscriptions = "/v1/subscriptions"
    public static let decisionPattern = "/v1/subscriptions/{id}/decision"
    public static let deliveries = "/v1/deliveries"
    public static let deliveriesAck = "/v1/deliveries/ack"
    public static let discrepancies = "/v1/discrepancies"
    public static let nodeKeysPattern = "/v1/nodes/{node}/keys"
    public static let certificates = "/v1/certificates"
    public static let keys = "/v1/keys"
    public static let hubKeys = "/v1/hub/keys"

    /// Routes a client without a certificate may call.
    public static let unauthenticated: Set<String> = [ca, enroll]

    public static func decision(_ subscription: Int64) -> String { "/v1/subscriptions/\(subscription)/decision" }

    public static func nodeKeys(_ node: String) -> String { "/v1/nodes/\(node)/keys" }

    public static func deliveries(subscription: Int64, after: UInt64, wait: Int, limit: Int) -> String {
        "\(deliveries)?subscription=\(subscription)&after=\(after)&wait=\(wait)&limit=\(limit)"
    }

    public static func discrepancies(after: Int64, limit: Int) -> String { "\(discrepancies)?after=\(after)&limit=\(limit)" }
}
