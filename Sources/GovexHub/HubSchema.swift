import GovexPostgres
import GovexWire

/// The hub's tables, created and migrated on start. Versioned migrations run in one
/// transaction under an advisory lock, so hub replicas starting together apply each
/// version exactly once and none serves requests against a half-migrated schema.
public enum HubSchema {
    public struct Migration: Sendable {
        public let version: Int
        public let description: String
        public let sql: String
        /// Work SQL alone cannot do, run after `sql` in the same transaction.
        let convert: (@Sendable (PostgresConnection) async throws -> Void)?

        init(version: Int, description: String, sql: String, convert: (@Sendable (PostgresConnection) async throws -> Void)? = nil) {
            self.version = version
            self.description = description
            self.sql = sql
            self.convert = convert
        }
    }

    /// Applies what is missing, up to `target` (tests stop early to build an older hub);
    /// returns the versions it applied.
    @discardableResult
    public static func migrate(_ sql: PostgresConnection, through target: Int = latestVersion) async throws -> [Int] {
        try await sql.transaction {
            try await sql.query("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('govex.schema'))")
            try await sql.script("""
                CREATE SCHEMA IF NOT EXISTS govex;
                CREATE TABLE IF NOT EXISTS govex.schema_migrations (
                    version int PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
                """)
            let current = Int(try await sql.query("SELECT coalesce(max(version), 0) FROM govex.schema_migrations").rows[0][0] ?? "0") ?? 0
            if current > latestVersion {
                // An older binary against a newer schema would write what newer code no longer reads.
                throw SchemaTooNew(found: current, known: latestVersion)
            }
            var applied: [Int] = []
            for migration in migrations where migration.version > current && migration.version <= target {
                try await sql.script(migration.sql)
                try await migration.convert?(sql)
                try await sql.query("INSERT INTO govex.schema_migrations (version, description) VALUES ($1, $2)",
                                    [String(migration.version), migration.description])
                applied.append(migration.version)
            }
            return applied
        }
    }

    public static var latestVersion: Int { migrations.last?.version ?? 0 }

    /// The database was migrated by a newer govex: this binary refuses to run against it.
    public struct SchemaTooNew: Error, CustomStringConvertible {
        public let found: Int
        public let known: Int
        public var description: String {
            "the hub database is at schema version \(found), newer than this govex knows (\(known)): a newer govex migrated it. "
                + "Install that version (or newer) here; downgrading the schema is not supported (CHANGELOG.md, \"Upgrading\")"
        }
    }

    /// Never edit a migration that has shipped: add the next version instead.
    public static let migrations: [Migration] = [
        Migration(version: 1, description: "nodes, keys, enrollment, catalog, batches, receipts, resource state", sql: """
            CREATE TABLE govex.nodes (
                node_id text PRIMARY KEY,
                created_at timestamptz NOT NULL DEFAULT now(),
                revoked_at timestamptz,
                epoch numeric(20,0) NOT NULL DEFAULT 0,
                next_sequence numeric(20,0) NOT NULL DEFAULT 1,
                pending_epoch numeric(20,0)
            );
            CREATE TABLE govex.enrollment_tokens (
                token_hash bytea PRIMARY KEY,
                node_id text NOT NULL REFERENCES govex.nodes,
                created_at timestamptz NOT NULL DEFAULT now(),
                expires_at timestamptz NOT NULL,
                used_at timestamptz
            );
            CREATE TABLE govex.node_keys (
                node_id text NOT NULL REFERENCES govex.nodes,
                key_id text NOT NULL,
                algorithm text NOT NULL,
                public_key_pem text NOT NULL,
                registered_at timestamptz NOT NULL DEFAULT now(),
                retired_at timestamptz,
                PRIMARY KEY (node_id, key_id)
            );
            CREATE TABLE govex.certificates (
                serial text PRIMARY KEY,
                node_id text NOT NULL REFERENCES govex.nodes,
                not_after timestamptz NOT NULL,
                issued_at timestamptz NOT NULL DEFAULT now(),
                pem text NOT NULL
            );
            CREATE TABLE govex.catalog_resources (
                code text PRIMARY KEY,
                name text NOT NULL,
                provider text NOT NULL,
                share text NOT NULL CHECK (share IN ('unconditional', 'conditional', 'none')),
                legal_basis text,
                key_columns text[] NOT NULL,
                update_frequency text,
                columns text[] NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now(),
                CHECK (share <> 'none' OR legal_basis IS NOT NULL)
            );
            -- One row per (node, epoch, sequence), accepted or rejected: the identity a replay is
            -- checked against, with the receipt that answered it. The blobs live in govex.batches.
            CREATE TABLE govex.batch_index (
                node_id text NOT NULL REFERENCES govex.nodes,
                epoch numeric(20,0) NOT NULL,
                sequence numeric(20,0) NOT NULL,
                received_at timestamptz NOT NULL,
                digest bytea NOT NULL,
                accepted boolean NOT NULL,
                reason text,
                receipt bytea NOT NULL,
                PRIMARY KEY (node_id, epoch, sequence)
            );
            -- The batches themselves, partitioned by month of arrival so that retention drops partitions.
            CREATE TABLE govex.batches (
                node_id text NOT NULL,
                epoch numeric(20,0) NOT NULL,
                sequence numeric(20,0) NOT NULL,
                received_at timestamptz NOT NULL,
                kind text NOT NULL,
                record_count int NOT NULL,
                bytes bytea NOT NULL,
                PRIMARY KEY (node_id, epoch, sequence, received_at)
            ) PARTITION BY RANGE (received_at);
            -- The hub's copy of each resource: its current rows, keyed by the canonical key text.
            CREATE TABLE govex.resource_rows (
                resource text NOT NULL,
                key text NOT NULL,
                row_values jsonb NOT NULL,
                commit_position numeric(20,0) NOT NULL,
                ordinal bigint NOT NULL,
                node_id text NOT NULL,
                epoch numeric(20,0) NOT NULL,
                sequence numeric(20,0) NOT NULL,
                PRIMARY KEY (resource, key)
            );
            """),
        Migration(version: 2, description: "catalog subjects", sql: """
            CREATE TABLE govex.catalog_subjects (
                code text PRIMARY KEY,
                name text NOT NULL,
                key_kind text NOT NULL,
                fields jsonb NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now()
            );
            """),
        Migration(version: 3, description: "subscriptions and their delivery streams", sql: """
            -- No foreign key to the catalog: a resource leaving the catalog must not be blocked by
            -- its subscriptions; routing only follows resources that are still there.
            CREATE TABLE govex.subscriptions (
                subscription_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                subscriber text NOT NULL REFERENCES govex.nodes,
                resource text NOT NULL,
                columns text[] NOT NULL,
                purpose text NOT NULL,
                status text NOT NULL CHECK (status IN ('pending', 'active', 'rejected', 'revoked')),
                requested_at timestamptz NOT NULL DEFAULT now(),
                decided_at timestamptz,
                decided_by text,
                reason text,
                -- Written only under the provider's ledger lock (routing happens in its ingest).
                next_delivery numeric(20,0) NOT NULL DEFAULT 1,
                acked_through numeric(20,0) NOT NULL DEFAULT 0,
                acked_at timestamptz
            );
            CREATE UNIQUE INDEX subscriptions_one_live ON govex.subscriptions (subscriber, resource)
                WHERE status IN ('pending', 'active');
            CREATE INDEX subscriptions_routing ON govex.subscriptions (resource) WHERE status = 'active';
            -- Each subscription's ordered stream: which stored batch its n-th delivery re-issues.
            CREATE TABLE govex.deliveries (
                subscription_id bigint NOT NULL REFERENCES govex.subscriptions,
                delivery numeric(20,0) NOT NULL,
                node_id text NOT NULL,
                epoch numeric(20,0) NOT NULL,
                sequence numeric(20,0) NOT NULL,
                received_at timestamptz NOT NULL,
                PRIMARY KEY (subscription_id, delivery)
            );
            """),
        Migration(version: 4, description: "sharing rules per subscription: approval, filter, masks, pseudonym secret", sql: """
            ALTER TABLE govex.subscriptions
                ADD COLUMN requested_columns text[],
                ADD COLUMN filter text,
                ADD COLUMN masks jsonb NOT NULL DEFAULT '{}',
                -- 32 bytes from two v4 UUIDs (PostgreSQL's strong random source): the key of this
                -- subscription's pseudonyms. Never leaves the hub.
                ADD COLUMN secret bytea NOT NULL
                    DEFAULT decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex');
            UPDATE govex.subscriptions SET requested_columns = columns;
            ALTER TABLE govex.subscriptions ALTER COLUMN requested_columns SET NOT NULL;
            """),
        Migration(version: 5, description: "typed hub copy; backfill deliveries", sql: """
            -- Column → type tag beside the text forms, so that backfill rebuilds typed values.
            ALTER TABLE govex.resource_rows ADD COLUMN row_types jsonb NOT NULL DEFAULT '{}';
            -- A backfill page is a delivery made by the hub itself: it carries its own bytes
            -- instead of naming a stored provider batch.
            ALTER TABLE govex.deliveries
                ALTER COLUMN node_id DROP NOT NULL, ALTER COLUMN epoch DROP NOT NULL,
                ALTER COLUMN sequence DROP NOT NULL, ALTER COLUMN received_at DROP NOT NULL,
                ADD COLUMN payload bytea,
                ADD CONSTRAINT deliveries_source CHECK ((payload IS NULL) = (node_id IS NOT NULL));
            """),
        Migration(version: 6, description: "the audit trail: a hash chain with one head", sql: """
            CREATE TABLE govex.audit_log (
                entry bigint PRIMARY KEY,
                at timestamptz NOT NULL,
                actor text NOT NULL,
                action text NOT NULL,
                subject text NOT NULL,
                details text NOT NULL,            -- canonical JSON, kept as text so its bytes never change
                previous_digest bytea NOT NULL,
                digest bytea NOT NULL
            );
            -- One row: the chain's head, locked by every append so that replicas keep one chain.
            CREATE TABLE govex.audit_head (
                only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
                entry bigint NOT NULL,
                digest bytea NOT NULL
            );
            INSERT INTO govex.audit_head (entry, digest) VALUES (0, decode(repeat('00', 32), 'hex'));
            """),
        Migration(version: 7, description: "golden subject records and discrepancies", sql: """
            -- One row per subject key: the authoritative value of each field (text forms, null = NULL)
            -- and what every other node reported for it.
            CREATE TABLE govex.golden_records (
                subject text NOT NULL,
                key text NOT NULL,
                row_values jsonb NOT NULL DEFAULT '{}',
                reports jsonb NOT NULL DEFAULT '{}',
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (subject, key)
            );
            CREATE TABLE govex.discrepancies (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                identity text NOT NULL,
                subject text NOT NULL,
                key text NOT NULL,
                field text,
                kind text NOT NULL CHECK (kind IN ('mismatch', 'invalid_identifier')),
                authority text,
                authority_value text,
                reporting_node text NOT NULL,
                reported_value text,
                reason text,
                first_seen timestamptz NOT NULL DEFAULT now(),
                last_seen timestamptz NOT NULL DEFAULT now(),
                status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
                resolved_at timestamptz
            );
            -- At most one open discrepancy per (kind, subject, key, field, reporting node).
            CREATE UNIQUE INDEX discrepancies_open ON govex.discrepancies (identity) WHERE status = 'open';
            CREATE INDEX discrepancies_by_node ON govex.discrepancies (reporting_node, status);
            """),
        Migration(version: 8, description: "discrepancy feedback streams", sql: """
            -- Every change of a discrepancy takes the next number, in commit order (taken under a
            -- transaction lock): a node's feedback stream is its discrepancies by change number.
            CREATE SEQUENCE govex.discrepancy_changes;
            ALTER TABLE govex.discrepancies ADD COLUMN change bigint;
            UPDATE govex.discrepancies SET change = nextval('govex.discrepancy_changes') FROM (SELECT id AS i FROM govex.discrepancies ORDER BY id) o WHERE id = o.i;
            ALTER TABLE govex.discrepancies ALTER COLUMN change SET NOT NULL;
            CREATE INDEX discrepancies_by_change ON govex.discrepancies (change);
            """),
        Migration(version: 9, description: "golden tables: one per subject, one column per field and reporting node", sql: """
            -- govex_golden.<subject> tables are made from the catalog (GoldenTable.ensure); the jsonb
            -- records of version 7 move into them when each is first made.
            CREATE SCHEMA IF NOT EXISTS govex_golden;
            """),
        Migration(version: 10, description: "golden merge queue; stored batches not recompressed", sql: """
            -- Accepted batches feeding a subject, queued by their ingest and removed by the merge
            -- that takes them (GoldenQueue): the merger merges what waits as one change.
            CREATE TABLE govex.golden_queue (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                node_id text NOT NULL,
                epoch numeric(20,0) NOT NULL,
                sequence numeric(20,0) NOT NULL,
                digest bytea NOT NULL,            -- of the batch file, as in govex.batch_index
                resources text[] NOT NULL,
                record_count int NOT NULL,
                queued_at timestamptz NOT NULL DEFAULT now()
            );
            -- Batch bodies are LZ4 already: out of line, but without a futile pglz pass.
            ALTER TABLE govex.batches ALTER COLUMN bytes SET STORAGE EXTERNAL;
            """),
        Migration(version: 11, description: "the hub's copy in the batches' binary row form", sql: """
            -- Every accepted row is written here: jsonb cost more than the rest of the ingest
            -- (built, parsed, stored with a type tag per value). Rows now keep the batch's own
            -- typed encoding (HubCopy), and keys compare bytewise.
            ALTER TABLE govex.resource_rows RENAME TO resource_rows_jsonb;
            ALTER INDEX govex.resource_rows_pkey RENAME TO resource_rows_jsonb_pkey;
            CREATE TABLE govex.resource_rows (
                resource text COLLATE "C" NOT NULL,
                key text COLLATE "C" NOT NULL,
                row_data bytea NOT NULL,          -- Column.rowEncoding: column names and typed values
                node_id text NOT NULL,            -- the batch that wrote the row last
                epoch numeric(20,0) NOT NULL,
                sequence numeric(20,0) NOT NULL,
                PRIMARY KEY (resource, key)
            );
            """, convert: HubCopy.convertJSONBCopy),
        Migration(version: 12, description: "the columns each stored batch uses", sql: """
            -- Recorded at ingest (from the batch's schemas): a delivery whose subscription keeps
            -- every one of them, with no filter and no masks, passes the body on undecoded.
            -- NULL for batches stored before: those are decoded as before.
            ALTER TABLE govex.batches ADD COLUMN column_names text[];
            """),
        Migration(version: 13, description: "the hub's copy written by the merger, not by the ingest", sql: """
            -- The queue now holds every accepted batch with records: the merger writes its rows
            -- into the hub's copy (copy_pending) and merges it into the golden records if it
            -- feeds a subject. Entries queued before this version had their copy written by
            -- their ingest and all fed a subject.
            ALTER TABLE govex.golden_queue
                ADD COLUMN feeds_subject boolean NOT NULL DEFAULT true,
                ADD COLUMN copy_pending boolean NOT NULL DEFAULT false;
            """),
        Migration(version: 14, description: "only a node's current certificate and accepted signing keys count", sql: """
            -- A certificate is current until rotation retires it or the administrator revokes it;
            -- of the certificates issued before this version, each node's newest stays current.
            ALTER TABLE govex.certificates ADD COLUMN retired_at timestamptz, ADD COLUMN revoked_at timestamptz;
            UPDATE govex.certificates c SET retired_at = now()
             WHERE EXISTS (SELECT 1 FROM govex.certificates d WHERE d.node_id = c.node_id AND (d.issued_at, d.serial) > (c.issued_at, c.serial));
            CREATE INDEX certificates_node ON govex.certificates (node_id);
            -- A signing key counts once accepted: endorsed by a current key of the node at
            -- registration, or accepted by the administrator. Keys registered before stay accepted.
            ALTER TABLE govex.node_keys ADD COLUMN accepted_at timestamptz DEFAULT now();
            ALTER TABLE govex.node_keys ALTER COLUMN accepted_at DROP DEFAULT;
            CREATE INDEX node_keys_key_id ON govex.node_keys (key_id);
            """),
        Migration(version: 15, description: "the spool backlog each agent reports with its pushes", sql: """
            ALTER TABLE govex.nodes ADD COLUMN spool_batches int, ADD COLUMN spool_bytes int8,
                ADD COLUMN spool_oldest_age_seconds int, ADD COLUMN spool_full boolean, ADD COLUMN spool_reported_at timestamptz;
            """),
        Migration(version: 16, description: "each row of the hub's copy with its reconcile digest (RowDigest)", sql: """
            -- Written by the merger with each row: reconcile compares ranges of buckets by
            -- aggregates over these, never reading rows whole. Rows stored before: filled here.
            ALTER TABLE govex.resource_rows ADD COLUMN key_bucket int8, ADD COLUMN row_hash int8;
            """, convert: { sql in
                try await HubCopy.digestStoredRows(on: sql)
                try await sql.query("ALTER TABLE govex.resource_rows ALTER COLUMN key_bucket SET NOT NULL, ALTER COLUMN row_hash SET NOT NULL")
            }),
    ]

    /// Creates the monthly partitions of govex.batches for the month holding `instant` (a
    /// timestamptz literal) and the next; idempotent, safe from several replicas at once.
    public static func ensurePartitions(_ sql: PostgresConnection, around instant: String = "now()") async throws {
        try await sql.transaction {
            try await sql.query("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('govex.partitions'))")
            for offset in 0...1 {
                let bounds = try await sql.query("""
                    SELECT to_char(m, 'YYYY_MM'), m::text, (m + interval '1 month')::text
                    FROM (SELECT date_trunc('month', (\(instant))::timestamptz AT TIME ZONE 'UTC') + $1::int * interval '1 month' AS m) s
                    """, [String(offset)]).rows[0]
                let name = "batches_" + (bounds[0] ?? "")
                try await sql.query("""
                    CREATE TABLE IF NOT EXISTS govex.\(name) PARTITION OF govex.batches
                    FOR VALUES FROM ('\(bounds[1] ?? "") UTC') TO ('\(bounds[2] ?? "") UTC')
                    """)
            }
        }
    }

    /// Drops the monthly partitions of govex.batches that ended more than `days` ago; returns
    /// their names. The small govex.batch_index rows stay, so a late replay is still recognised.
    @discardableResult
    public static func dropExpiredPartitions(_ sql: PostgresConnection, retentionDays days: Int) async throws -> [String] {
        try await sql.transaction {
            try await sql.query("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('govex.partitions'))")
            let expired = try await sql.query("""
                SELECT c.relname FROM pg_catalog.pg_inherits i
                JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'govex.batches'::regclass AND c.relname ~ '^batches_[0-9]{4}_[0-9]{2}$'
                  AND (to_date(substr(c.relname, 9), 'YYYY_MM') + interval '1 month') < (now() AT TIME ZONE 'UTC') - $1::int * interval '1 day'
                ORDER BY 1
                """, [String(days)]).rows.compactMap { $0[0] }
            var dropped: [String] = []
            for name in expired {
                let partition = "govex.\(SQLQuoting.identifier(name))"
                // A batch still waiting for the merger is kept until it is merged.
                let waiting = try await sql.query("""
                    SELECT EXISTS (SELECT 1 FROM \(partition) b JOIN govex.golden_queue q USING (node_id, epoch, sequence))
                    """).rows.first?[0] == "t"
                if waiting { continue }
                try await sql.query("DROP TABLE \(partition)")
                dropped.append(name)
            }
            return dropped
        }
    }
}
