/// Quoting for SQL identifiers and literals that come from configuration,
/// so a table named `x"; DROP TABLE y; --` stays a name.
public enum SQLQuoting {
    /// `"name"`, with embedded double quotes doubled.
    public static func identifier(_ name: String) -> String {
        "\"" + name.replacing("\"", with: "\"\"") + "\""
    }

    /// `schema.table` as two quoted identifiers.
    public static func qualified(schema: String, name: String) -> String {
        identifier(schema) + "." + identifier(name)
    }

    /// `'text'`, with embedded single quotes doubled. Only for places that cannot take parameters
    /// (replication commands, DDL); `standard_conforming_strings` is on in every supported PostgreSQL.
    public static func literal(_ text: String) -> String {
        "'" + text.replacing("'", with: "''") + "'"
    }
}
