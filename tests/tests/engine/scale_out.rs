//! docs/scale-out.md: what the schema still needs before it can be distributed by account with
//! Citus. Every table is placed (distributed by account, a reference table, or kept on the
//! coordinator); each distributed table's keys must carry the distribution column; and what does
//! not yet is exactly the list the document gives — a new table, key or foreign key that is not
//! ready fails here until it is made ready or written down.

use std::collections::BTreeSet;

use credits_tests::TestDb;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};

/// Where each table goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Sharded by the account (`accounts` by `id`, the others by `account_id`), co-located.
    Distributed,
    /// Copied to every node: small, rarely written, read by the hot path's joins.
    Reference,
    /// Kept on the coordinator: global queues and records no hot-path transaction writes.
    Coordinator,
}

const PLACEMENT: &[(&str, Placement)] = &[
    ("accounts", Placement::Distributed),
    ("account_restrictions", Placement::Distributed),
    ("api_keys", Placement::Distributed),
    ("auto_topups", Placement::Distributed),
    ("buckets", Placement::Distributed),
    ("business_verifications", Placement::Distributed),
    ("checkout_sessions", Placement::Distributed),
    ("disputes", Placement::Distributed),
    ("idempotency_records", Placement::Distributed),
    ("invoice_grants", Placement::Distributed),
    ("ledger_entries", Placement::Distributed),
    ("page_links", Placement::Distributed),
    ("page_sessions", Placement::Distributed),
    ("members", Placement::Distributed),
    ("payment_jobs", Placement::Distributed),
    ("run_reservations", Placement::Distributed),
    ("runs", Placement::Distributed),
    ("subscriptions", Placement::Distributed),
    ("topup_purchases", Placement::Distributed),
    ("trial_usage", Placement::Distributed),
    ("webhook_attempts", Placement::Distributed),
    ("webhook_deliveries", Placement::Distributed),
    ("webhook_endpoints", Placement::Distributed),
    ("webhook_events", Placement::Distributed),
    ("operators", Placement::Reference),
    ("console_sessions", Placement::Coordinator),
    ("operator_actions", Placement::Coordinator),
    ("outbox", Placement::Coordinator),
    ("stripe_events", Placement::Coordinator),
    ("test_clock", Placement::Coordinator),
];

fn placement(table: &str) -> Option<Placement> {
    PLACEMENT.iter().find(|(t, _)| *t == table).map(|(_, p)| *p)
}

fn distribution_column(table: &str) -> &'static str {
    if table == "accounts" { "id" } else { "account_id" }
}

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Bool)]
    nullable: bool,
}

#[derive(QueryableByName)]
struct Constraint {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    definition: String,
    /// The columns of the key (for a foreign key: its own columns).
    #[diesel(sql_type = diesel::sql_types::Array<Text>)]
    columns: Vec<String>,
    /// A foreign key's referenced table and columns.
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    target: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Array<Text>)]
    target_columns: Vec<String>,
}

/// What is not ready yet, one line per problem: `table: what`.
fn not_ready(conn: &mut PgConnection) -> BTreeSet<String> {
    let columns: Vec<Column> = diesel::sql_query(
        "SELECT table_name::text, column_name::text, is_nullable = 'YES' AS nullable
           FROM information_schema.columns c
           JOIN information_schema.tables t USING (table_schema, table_name)
          WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
            AND table_name <> '__diesel_schema_migrations'",
    )
    .load(conn)
    .unwrap();
    let constraints: Vec<Constraint> = diesel::sql_query(
        "SELECT c.conrelid::regclass::text AS table_name, c.contype::text AS kind,
                pg_get_constraintdef(c.oid) AS definition,
                ARRAY(SELECT a.attname::text FROM unnest(c.conkey) k JOIN pg_attribute a
                        ON a.attrelid = c.conrelid AND a.attnum = k) AS columns,
                c.confrelid::regclass::text AS target,
                ARRAY(SELECT a.attname::text FROM unnest(COALESCE(c.confkey, '{}')) k JOIN pg_attribute a
                        ON a.attrelid = c.confrelid AND a.attnum = k) AS target_columns
           FROM pg_constraint c
          WHERE c.connamespace = 'public'::regnamespace AND c.contype IN ('p', 'u', 'f')
            AND c.conrelid::regclass::text <> '__diesel_schema_migrations'",
    )
    .load(conn)
    .unwrap();
    let tables: BTreeSet<&str> = columns.iter().map(|c| c.table_name.as_str()).collect();
    let mut problems = BTreeSet::new();
    for table in &tables {
        let Some(place) = placement(table) else {
            problems.insert(format!("{table}: not placed (distributed, reference or coordinator) in this test"));
            continue;
        };
        if place != Placement::Distributed {
            continue;
        }
        let column = distribution_column(table);
        match columns.iter().find(|c| c.table_name == *table && c.column_name == column) {
            None => {
                problems.insert(format!("{table}: no {column} column"));
            }
            Some(c) if c.nullable => {
                problems.insert(format!("{table}: {column} is nullable"));
            }
            Some(_) => {}
        }
    }
    for c in &constraints {
        if placement(&c.table_name) != Some(Placement::Distributed) {
            continue;
        }
        let column = distribution_column(&c.table_name);
        match c.kind.as_str() {
            "p" | "u" if !c.columns.iter().any(|k| k == column) => {
                problems.insert(format!("{}: {} lacks {column}", c.table_name, c.definition));
            }
            "f" => {
                let target = c.target.as_deref().unwrap_or_default();
                // A foreign key between two distributed tables must join them on the account.
                if placement(target) == Some(Placement::Distributed) {
                    let target_column = distribution_column(target);
                    let paired = c
                        .columns
                        .iter()
                        .zip(&c.target_columns)
                        .any(|(own, theirs)| own == column && theirs == target_column);
                    if !paired {
                        problems.insert(format!("{}: {} does not carry {column}", c.table_name, c.definition));
                    }
                }
            }
            _ => {}
        }
    }
    problems
}

/// The lines of the fenced block that follows "## Migrations still needed" in docs/scale-out.md.
fn documented() -> BTreeSet<String> {
    let doc = include_str!("../../../docs/scale-out.md");
    let section = doc.split("## Migrations still needed").nth(1).expect("the section in docs/scale-out.md");
    let block = section.split("```").nth(1).expect("its fenced block");
    block.lines().skip(1).map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

#[test]
fn the_schema_is_ready_to_distribute_by_account_but_for_what_docs_scale_out_lists() {
    let db = TestDb::new();
    let actual = not_ready(&mut db.conn());
    let doc = documented();
    let undocumented: Vec<&String> = actual.difference(&doc).collect();
    let done: Vec<&String> = doc.difference(&actual).collect();
    assert!(
        undocumented.is_empty() && done.is_empty(),
        "docs/scale-out.md's list is out of date.\nNot ready and not listed:\n{}\nListed but ready now:\n{}",
        undocumented.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"),
        done.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"),
    );
}
