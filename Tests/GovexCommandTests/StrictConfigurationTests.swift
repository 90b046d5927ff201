import Foundation
import GovexAgent
import GovexCapture
import GovexConfiguration
import GovexHub
import Testing

/// A typo in a configuration file must stop the program with the file, line and the key it
/// probably meant: a misspelt `exclude` or `filter` silently ignored would share what the DBA
/// meant to withhold.
@Suite("Strict configuration: unknown keys are refused everywhere")
struct StrictConfigurationTests {
    static let agentHead = """
        [node]
        id = "gongan"
        data_dir = "/tmp/govex"
        [signing]
        [source]
        conninfo = "dbname=business"

        """

    static let publishHead = agentHead + """
        [[publish]]
        resource = "GA-RK-0001"
        share = "unconditional"
        table = "public.residents"
        key = ["id_number"]

        """

    @Test("agent.toml: a misspelt key is refused with its line and the key it meant", arguments: [
        (publishHead + "exlude = [\"internal_note\"]\n", "agent.toml:12: [publish]#0 exlude: unknown key; did you mean exclude?"),
        (publishHead + "fitler = \"district = '朝阳区'\"\n", "agent.toml:12: [publish]#0 fitler: unknown key; did you mean filter?"),
        (publishHead + "colums = [\"id_number\"]\n", "agent.toml:12: [publish]#0 colums: unknown key; did you mean columns?"),
        (publishHead + "rename = \"address\"\n", "agent.toml:12: [publish]#0 rename: expected a table like rename = { address = \"domicile\" }"),
        (agentHead + "[[subscribe]]\nresource = \"MZ-HY-0003\"\ntable = \"shared.m\"\npurpose = \"p\"\ncolumn = [\"a\"]\n",
         "agent.toml:11: [subscribe]#0 column: unknown key; did you mean columns?"),
        (agentHead.replacingOccurrences(of: "data_dir", with: "datadir"), "agent.toml:3: [node] datadir: unknown key; did you mean data_dir?"),
        (agentHead + "slots = \"x\"\n", "agent.toml:7: [source] slots: unknown key; did you mean slot?"),
        (agentHead + "[tls]\ncert = \"/x\"\n", "agent.toml:7: tls: unknown section: the TLS files live in data_dir/tls"),
        (agentHead + "[batches]\n", "agent.toml:7: batches: unknown section; did you mean batch?"),
    ])
    func agent(text: String, expected: String) {
        #expect { _ = try AgentConfiguration.load(path: "agent.toml", text: text) } throws: { error in
            "\(error)".hasPrefix(expected)
        }
    }

    @Test("agent.toml: the withheld column stays withheld when spelt right")
    func excludeSpeltRight() throws {
        let configuration = try AgentConfiguration.load(path: "agent.toml", text: Self.publishHead + "exclude = [\"internal_note\"]\n")
        #expect(configuration.publish[0].mapping.columns == .excluding(["internal_note"]))
    }

    static let resourceHead = """
        [[resource]]
        code = "GA-RK-0001"
        name = "residents"
        provider = "gongan"
        share = "unconditional"
        key = ["id_number"]
        columns = ["id_number", "name"]

        """

    @Test("catalog.toml: a misspelt key is refused in resources, subjects and fields", arguments: [
        (resourceHead + "update_frequncy = \"daily\"\n", "catalog.toml:8: [resource]#0 update_frequncy: unknown key; did you mean update_frequency?"),
        (resourceHead + "legal_bases = \"x\"\n", "catalog.toml:8: [resource]#0 legal_bases: unknown key; did you mean legal_basis?"),
        (resourceHead + "[[subject]]\ncode = \"person\"\nname = \"p\"\nkey_kind = \"citizen_id\"\nkeykind = \"x\"\n",
         "catalog.toml:12: [subject]#0 keykind: unknown key; did you mean key_kind?"),
        (resourceHead + "[[subject]]\ncode = \"person\"\nname = \"p\"\nkey_kind = \"citizen_id\"\n[[subject.field]]\nname = \"name\"\nauthorty = \"gongan\"\n",
         "catalog.toml:14: [subject.field]#0 authorty: unknown key; did you mean authority?"),
        ("[[resources]]\n", "catalog.toml:1: resources: unknown section; did you mean resource?"),
    ])
    func catalog(text: String, expected: String) {
        #expect { _ = try Catalog.load(path: "catalog.toml", text: text) } throws: { error in
            "\(error)".hasPrefix(expected)
        }
    }

    @Test("hub.toml: a misspelt key is refused with the key it meant")
    func hub() {
        let text = "[hub]\ndata_dir = \"/d\"\ndatabase = \"x\"\naddresses = [\"127.0.0.1\"]\nmax_batch_byte = \"1MiB\"\n"
        #expect { _ = try HubConfiguration.load(path: "hub.toml", text: text) } throws: { error in
            "\(error)".hasPrefix("hub.toml:5: [hub] max_batch_byte: unknown key; did you mean max_batch_bytes?")
        }
    }

    @Test("suggestions: near names only, transpositions count once", arguments: [
        ("fitler", "filter"), ("exlude", "exclude"), ("update_frequncy", "update_frequency"), ("zzzzzz", nil),
    ] as [(String, String?)])
    func suggestions(typed: String, expected: String?) {
        #expect(ConfigurationReader.closestKey(to: typed, among: ["filter", "exclude", "update_frequency", "columns"]) == expected)
    }
}
