import ArgumentParser
import Foundation
import GovexHub
import GovexPostgres
import GovexWire

struct HubDiscrepancies: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "discrepancies",
        abstract: "List the discrepancies between departments' values and the authoritative ones (一数一源).",
        discussion: """
        Examples:
          govex hub discrepancies --status open --config /etc/govex/hub.toml
          govex hub discrepancies --subject person --node zhujian --json --config /etc/govex/hub.toml
        """
    )
    @Option(help: "Only this subject.") var subject: String?
    @Option(help: "open or resolved.") var status: String?
    @Option(help: "Only those this node is involved in (as reporter or authority).") var node: String?
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var hub: HubOptions

    func run() async throws {
        if let status, status != "open", status != "resolved" {
            printError("--status must be open or resolved, not '\(status)'")
            throw ExitStatus.failure
        }
        let configuration = try hub.load()
        try await reportingFailure {
            let rows = try await PostgresConnection.with(configuration.database, name: "govex-hub-admin") { sql in
                try await HubStore.discrepancies(subject: subject, status: status, node: node, on: sql)
            }
            func optional(_ value: String?) -> String { value.map(BatchJSON.string) ?? "null" }
            if json {
                print("[" + rows.map { row in
                    BatchJSON.object([
                        ("id", String(row.id)), ("subject", BatchJSON.string(row.subject)), ("key", BatchJSON.string(row.key)),
                        ("kind", BatchJSON.string(row.kind)), ("field", optional(row.field)), ("authority", optional(row.authority)),
                        ("authority_value", optional(row.authorityValue)), ("reporting_node", BatchJSON.string(row.reportingNode)),
                        ("reported_value", optional(row.reportedValue)), ("reason", optional(row.reason)), ("status", BatchJSON.string(row.status)),
                        ("first_seen", BatchJSON.string(row.firstSeen)), ("last_seen", BatchJSON.string(row.lastSeen)),
                    ])
                }.joined(separator: ",") + "]")
                return
            }
            print("ID\tSTATUS\tSUBJECT\tKEY\tFIELD\tAUTHORITY=VALUE\tREPORTER=VALUE\tFIRST SEEN\tLAST SEEN")
            for row in rows {
                let authority = row.kind == "invalid_identifier" ? "invalid identifier: \(row.reason ?? "")"
                    : "\(row.authority ?? "")=\(row.authorityValue ?? "NULL")"
                print("\(row.id)\t\(row.status)\t\(row.subject)\t\(row.key)\t\(row.field ?? "-")\t\(authority)\t"
                      + "\(row.reportingNode)=\(row.reportedValue ?? "NULL")\t\(row.firstSeen)\t\(row.lastSeen)")
            }
        }
    }
}
