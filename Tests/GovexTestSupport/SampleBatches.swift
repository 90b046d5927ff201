import GovexWire

/// Representative batches: every operation, two resources, the edge values,
/// an update with unchanged TOAST columns and one that changes its key.
public enum SampleBatches {
    public static let commit: UInt64 = 0x0000_0001_6B37_4800

    public static func mixedRecords() -> [ChangeRecord] {
        var records = EdgeValues.insertRecords(resource: "GA-RK-0001", commit: commit)
        let next = commit + 0x200
        records += [
            ChangeRecord(operation: .update, resource: "GA-RK-0001", position: SourcePosition(commit: next, ordinal: 0),
                         key: [Column("id", .int8(1))],
                         values: EdgeValues.rows[0].dropFirst().map { column in
                             Column(column.name, column.name == "docb" || column.name == "blob" ? .unchanged : column.value)
                         }),
            ChangeRecord(operation: .update, resource: "GA-RK-0001", position: SourcePosition(commit: next, ordinal: 1),
                         key: [Column("id", .int8(40))],
                         values: EdgeValues.rows[1].dropFirst().map { Column($0.name, $0.value) },
                         oldKey: [Column("id", .int8(4))]),
            ChangeRecord(operation: .delete, resource: "GA-RK-0001", position: SourcePosition(commit: next, ordinal: 2),
                         key: [Column("id", .int8(2))]),
            ChangeRecord(operation: .insert, resource: "MZ-HY-0003", position: SourcePosition(commit: next + 0x100, ordinal: 0),
                         key: [Column("id_number", .text("11010519491231002X")), Column("registered_on", .date(9131))],
                         values: [Column("marital_status", .text("已婚")), Column("office", .other(typeName: "character(4)", text: "海淀  "))]),
            ChangeRecord(operation: .truncate, resource: "MZ-HY-0003", position: SourcePosition(commit: next + 0x180, ordinal: 0)),
            ChangeRecord(operation: .insert, resource: "MZ-HY-0003", position: SourcePosition(commit: next + 0x180, ordinal: 1),
                         key: [Column("id_number", .text("11010519491231002X")), Column("registered_on", .date(9131))],
                         values: [Column("marital_status", .null), Column("office", .null)]),
        ]
        return records
    }

    public static func metadata(sequence: UInt64 = 42, kind: BatchKind = .change) -> BatchMetadata {
        BatchMetadata(nodeID: "gongan", nodeEpoch: 0x6743_1A2B_0000_0001, sequence: sequence, kind: kind,
                      positionType: .postgresLSN, completeThrough: commit + 0x280, createdAt: 1_764_000_000_123_456)
    }

    public static func seal(_ records: [ChangeRecord], key: SigningKey, metadata: BatchMetadata? = nil) throws -> [UInt8] {
        var encoder = BatchBodyEncoder()
        for record in records { try encoder.append(record) }
        return try BatchSealer.seal(encoder, metadata: metadata ?? Self.metadata(), key: key)
    }
}
