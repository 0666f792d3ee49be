use credits_tests::TestDb;
use diesel::prelude::*;
use diesel::sql_types::Text;

#[derive(QueryableByName, Debug)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

fn tables(conn: &mut PgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations' ORDER BY 1",
    )
    .load::<Name>(conn)
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect()
}

#[test]
fn migrations_go_up_down_and_up_again() {
    let db = TestDb::empty();
    let pool = credits_db::pool(&db.url, 1, std::time::Duration::from_secs(10));
    credits_db::migrate(&pool).unwrap();
    let after_up = tables(&mut db.conn());
    assert!(after_up.contains(&"ledger_entries".to_string()) && after_up.contains(&"accounts".to_string()));
    credits_db::revert_all(&pool).unwrap();
    assert_eq!(tables(&mut db.conn()), Vec::<String>::new());
    credits_db::migrate(&pool).unwrap();
    assert_eq!(tables(&mut db.conn()), after_up);
}

#[test]
fn every_foreign_key_is_indexed() {
    let db = TestDb::new();
    let unindexed: Vec<Name> = diesel::sql_query(
        "SELECT c.conrelid::regclass::text || '(' || a.attname || ')' AS name \
         FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
         WHERE c.contype = 'f' AND NOT EXISTS ( \
           SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])",
    )
    .load(&mut db.conn())
    .unwrap();
    assert!(unindexed.is_empty(), "foreign keys without an index: {unindexed:?}");
}
