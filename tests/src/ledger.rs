//! The ledger invariant (R15) read straight from the database.

use diesel::prelude::*;
use diesel::sql_types::Text;

#[derive(QueryableByName)]
struct Broken {
    #[diesel(sql_type = Text)]
    problem: String,
}

pub fn assert_ledger_consistent(conn: &mut PgConnection) {
    let broken: Vec<Broken> = diesel::sql_query(
        "SELECT 'bucket ' || b.id || ': remaining ' || b.remaining || ' but entries sum to ' || COALESCE(s.total, 0) AS problem \
         FROM buckets b LEFT JOIN (SELECT bucket_id, sum(credits) AS total FROM ledger_entries GROUP BY bucket_id) s \
           ON s.bucket_id = b.id \
         WHERE b.remaining <> COALESCE(s.total, 0) OR b.remaining < 0",
    )
    .load(conn)
    .unwrap();
    let problems: Vec<String> = broken.into_iter().map(|b| b.problem).collect();
    assert!(problems.is_empty(), "the ledger and the buckets disagree: {problems:?}");
}
