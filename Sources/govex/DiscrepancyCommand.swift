import ArgumentParser
import Foundation
import GovexAgent
import GovexHub
import GovexPostgres
import GovexWire

/// How `govex discrepancies` and `govex hub discrepancies` show them.
enum DiscrepancyPrinting {
    typealias Row = (row: HubStore.DiscrepancyRow, hidden: Set<String>)

    static func validate(status: String?) throws {
        if let status, status != "open", status != "resolved" {
            printError("--status must be open or resolved, not '\(status)'")
            throw ExitStatus.failure
        }
    }

    static func value(_ row: Row, _ name: String, _ value: String?) -> String {
        row.hidden.contains(name) ? "(differs; not shown: not entitled to this field)" : (value ?? "NULL")
    }

    static func list(_ rows: [Row], json: Bool) {
        if json {
            print("[" + rows.map { $0.row.json(hidden: $0.hidden) }.joined(separator: ",") + "]")
            return
        }
        print("ID\tSTATUS\tSUBJECT\tKEY\tFIELD\tAUTHORITY=VALUE\tREPORTER=VALUE\tFIRST SEEN\tLAST SEEN")
        for entry in rows {
            let row = entry.row
            let authority = row.kind == "invalid_identifier" ? "invalid identifier: \(row.reason ?? "")"
                : "\(row.authority ?? "")=\(value(entry, "authority_value", row.authorityValue))"
            print("\(row.id)\t\(row.status)\t\(row.subject)\t\(row.key)\t\(row.field ?? "-")\t\(authority)\t"
                  + "\(row.reportingNode)=\(value(entry, "reported_value", row.reportedValue))\t\(row.firstSeen)\t\(row.lastSeen)")
        }
    }

    static func show(_ entry: Row?, id: Int64, json: Bool) throws {
        guard let entry else {
            printError("there is no discrepancy \(id) (see the list)")
            throw ExitStatus.failure
        }
        if json {
            print(entry.row.json(hidden: entry.hidden))
            return
        }
        let row = entry.row
        print("discrepancy \(row.id): \(row.status)\(row.resolvedAt.map { " (resolved \($0))" } ?? "")")
        print("  subject \(row.subject), key \(row.key)\(row.field.map { ", field \($0)" } ?? "")")
        if row.kind == "invalid_identifier" {
            print("  invalid identifier reported by \(row.reportingNode): \(row.reason ?? "")")
        } else {
            print("  authority \(row.authority ?? "?"): \(value(entry, "authority_value", row.authorityValue))")
            print("  reported by \(row.reportingNode): \(value(entry, "reported_value", row.reportedValue))")
        }
        print("  first seen \(row.firstSeen), last seen \(row.lastSeen)")
    }
}

struct DiscrepancyFilter: ParsableArguments {
    @Option(help: "Only this subject.") var subject: String?
    @Option(help: "open or resolved.") var status: String?
    @Flag(help: "Print JSON.") var json = false
}

/// On an agent: the discrepancies the hub fed back to this department, from its own database.
struct Discrepancies: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The discrepancies between this department's values and the authoritative ones (一数一源), as the hub fed them back.",
        discussion: """
        The agent keeps them in govex.discrepancies in the department's database (its DBA can
        query and join them); a value this department is not entitled to see is left out.

        Examples:
          govex discrepancies list --status open --config /etc/govex/agent.toml
          govex discrepancies show 42 --json --config /etc/govex/agent.toml
        """,
        subcommands: [List.self, Show.self], defaultSubcommand: List.self
    )

    static func rows(config: String, id: Int64?, filter: DiscrepancyFilter?) async throws -> [DiscrepancyPrinting.Row] {
        let text = try readConfigurationFile(config)
        return try await reportingFailure {
            let configuration = try AgentConfiguration.load(path: config, text: text)
            return try await PostgresConnection.with(configuration.conninfo, name: "govex-discrepancies") { sql in
                guard try await sql.query("SELECT to_regclass('govex.discrepancies') IS NOT NULL").rows.first?[0] == "t" else { return [] }
                func time(_ column: String) -> String { "to_char(\(column) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')" }
                return try await sql.query("""
                    SELECT id, change, subject, key, kind, reporting_node, status, \(time("first_seen")), \(time("last_seen")), field, authority,
                           authority_value, reported_value, reason, \(time("resolved_at")), authority_value_shown, reported_value_shown
                    FROM govex.discrepancies
                    WHERE ($1::text IS NULL OR subject = $1) AND ($2::text IS NULL OR status = $2) AND ($3::bigint IS NULL OR id = $3)
                    ORDER BY id DESC
                    """, [filter?.subject, filter?.status, id.map(String.init)]).rows.map { row in
                    let stored = HubStore.DiscrepancyRow(
                        id: Int64(row[0] ?? "") ?? 0, change: Int64(row[1] ?? "") ?? 0, subject: row[2] ?? "", key: row[3] ?? "", kind: row[4] ?? "",
                        reportingNode: row[5] ?? "", status: row[6] ?? "", firstSeen: row[7] ?? "", lastSeen: row[8] ?? "", field: row[9],
                        authority: row[10], authorityValue: row[11], reportedValue: row[12], reason: row[13], resolvedAt: row[14])
                    var hidden = Set<String>()
                    if row[15] == "f" { hidden.insert("authority_value") }
                    if row[16] == "f" { hidden.insert("reported_value") }
                    return (stored, hidden)
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List them, newest first.")
        @OptionGroup var filter: DiscrepancyFilter
        @Option(help: "The agent's TOML configuration.") var config: String = "/etc/govex/agent.toml"

        func run() async throws {
            try DiscrepancyPrinting.validate(status: filter.status)
            DiscrepancyPrinting.list(try await Discrepancies.rows(config: config, id: nil, filter: filter), json: filter.json)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one.")
        @Argument(help: "The discrepancy's id.") var id: Int64
        @Flag(help: "Print JSON.") var json = false
        @Option(help: "The agent's TOML configuration.") var config: String = "/etc/govex/agent.toml"

        func run() async throws {
            try DiscrepancyPrinting.show(try await Discrepancies.rows(config: config, id: id, filter: nil).first, id: id, json: json)
        }
    }
}

/// At the hub: every discrepancy, with every value.
struct HubDiscrepancies: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "discrepancies",
        abstract: "List the discrepancies between departments' values and the authoritative ones (一数一源).",
        discussion: """
        Examples:
          govex hub discrepancies list --status open --config /etc/govex/hub.toml
          govex hub discrepancies list --subject person --node zhujian --json --config /etc/govex/hub.toml
          govex hub discrepancies show 42 --config /etc/govex/hub.toml
        """,
        subcommands: [List.self, Show.self], defaultSubcommand: List.self
    )

    static func rows(_ query: HubStore.DiscrepancyQuery, hub: HubOptions) async throws -> [DiscrepancyPrinting.Row] {
        let configuration = try hub.load()
        return try await reportingFailure {
            try await PostgresConnection.with(configuration.database, name: "govex-hub-admin") { sql in
                try await HubStore.discrepancies(query, on: sql).map { ($0, []) }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List them, newest first.")
        @OptionGroup var filter: DiscrepancyFilter
        @Option(help: "Only those this node is involved in (as reporter or authority).") var node: String?
        @OptionGroup var hub: HubOptions

        func run() async throws {
            try DiscrepancyPrinting.validate(status: filter.status)
            let query = HubStore.DiscrepancyQuery(subject: filter.subject, status: filter.status, node: node)
            DiscrepancyPrinting.list(try await HubDiscrepancies.rows(query, hub: hub), json: filter.json)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one.")
        @Argument(help: "The discrepancy's id.") var id: Int64
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var hub: HubOptions

        func run() async throws {
            try DiscrepancyPrinting.show(try await HubDiscrepancies.rows(HubStore.DiscrepancyQuery(id: id), hub: hub).first, id: id, json: json)
        }
    }
}
