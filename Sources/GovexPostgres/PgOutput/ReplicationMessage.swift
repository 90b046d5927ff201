import GovexWire

/// The streaming replication protocol's CopyData messages around pgoutput:
/// what the server sends (WAL data, keepalives) and what the client answers
/// (standby status updates). Pure: bytes in, values out, and back.
public enum ReplicationMessage: Sendable, Equatable {
    /// WAL data: `walStart` is where this message's data begins, `walEnd` the
    /// server's current end of WAL, `data` one pgoutput message.
    case xlogData(walStart: UInt64, walEnd: UInt64, sendTime: Int64, data: [UInt8])
    /// The server's heartbeat; when `replyRequested` is set it drops the
    /// connection at `wal_sender_timeout` unless a status update answers.
    case keepalive(walEnd: UInt64, sendTime: Int64, replyRequested: Bool)

    public static func parse(_ bytes: [UInt8]) throws(PgOutputError) -> ReplicationMessage {
        try MessageReader.withBytes(bytes) { raw throws(PgOutputError) in try parse(raw) }
    }

    public static func parse(_ raw: UnsafeRawBufferPointer) throws(PgOutputError) -> ReplicationMessage {
        var reader = MessageReader(reader: ByteReader(raw), name: "replication")
        let type = try reader.u8()
        switch type {
        case UInt8(ascii: "w"):
            reader.name = "XLogData"
            let start = try reader.u64(), end = try reader.u64(), time = try reader.i64()
            return .xlogData(walStart: start, walEnd: end, sendTime: time, data: try reader.bytes(reader.remaining))
        case UInt8(ascii: "k"):
            reader.name = "keepalive"
            let end = try reader.u64(), time = try reader.i64(), reply = try reader.u8()
            guard reply <= 1 else { throw reader.invalid("reply flag must be 0 or 1, found \(reply)") }
            guard reader.remaining == 0 else { throw .trailingBytes(message: reader.name, count: reader.remaining) }
            return .keepalive(walEnd: end, sendTime: time, replyRequested: reply == 1)
        default:
            throw .unknownMessage(type)
        }
    }

    /// A standby status update ('r'): positions written, flushed (durable: the
    /// server may recycle WAL before it) and applied, and the client's clock in
    /// microseconds since 2000-01-01.
    public static func standbyStatusUpdate(written: UInt64, flushed: UInt64, applied: UInt64, clock: Int64, replyRequested: Bool = false) -> [UInt8] {
        var writer = ByteWriter(capacity: 34)
        writer.write(UInt8(ascii: "r"))
        writer.write(written)
        writer.write(flushed)
        writer.write(applied)
        writer.write(clock)
        writer.write(UInt8(replyRequested ? 1 : 0))
        return writer.bytes
    }
}
