//! Seed 000's related tables for the profiles scenario: `accounts`,
//! `education`, `work_experience` and `tags`, each keyed by `user_id`
//! (several rows per user), as Delta tables with the Change Data Feed on —
//! the tables a profile is denormalized from besides the users table.
//!
//! Rows are a pure function of (seed, user, round): [`rows`] is what the
//! tables hold for a user after `round` rounds of changes, so tests compute
//! the expected tables without reading them back. [`write_round`] writes
//! round 0 (every user) or, for a later round, replaces the changed users'
//! rows in every table: a delete of their rows, then an append — two table
//! versions whose change feed has the deletes and the inserts.

use super::random::Rng;
use crate::delta::{DeltaError, table};
use arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::DeltaTable;
use deltalake::protocol::SaveMode;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The related tables, in the order a profile lists them.
pub const TABLES: [&str; 4] = ["accounts", "education", "work_experience", "tags"];

const KINDS: [&str; 3] = ["checking", "savings", "brokerage"];
const SCHOOLS: [&str; 5] = ["Otago", "Auckland", "MIT", "ETH Zurich", "NUS"];
const DEGREES: [&str; 3] = ["BSc", "MSc", "PhD"];
const COMPANIES: [&str; 5] = ["Acme", "Globex", "Initech", "Umbrella", "Hooli"];
const TITLES: [&str; 4] = ["Engineer", "Analyst", "Manager", "Designer"];
const TAGS: [&str; 6] = ["vip", "beta", "churn-risk", "mobile", "newsletter", "b2b"];

/// The columns of `table` (one of [`TABLES`]).
pub fn schema(table: &str) -> SchemaRef {
    let key = Field::new("user_id", DataType::Int64, false);
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    let year = |name: &str, nullable| Field::new(name, DataType::Int32, nullable);
    let fields = match table {
        "accounts" => vec![
            key,
            Field::new("account_id", DataType::Int64, false),
            text("kind"),
            Field::new("balance_cents", DataType::Int64, false),
        ],
        "education" => vec![
            key,
            text("school"),
            text("degree"),
            year("start_year", false),
        ],
        "work_experience" => vec![
            key,
            text("company"),
            text("title"),
            year("start_year", false),
            year("end_year", true),
        ],
        _ => vec![key, text("tag")],
    };
    Arc::new(Schema::new(fields))
}

/// One row of a related table, as the tests compare it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Row {
    /// `accounts`.
    Account {
        /// The account.
        account_id: i64,
        /// `checking`, `savings` or `brokerage`.
        kind: &'static str,
        /// Exact cents.
        balance_cents: i64,
    },
    /// `education`.
    Education {
        /// When it began.
        start_year: i32,
        /// Where.
        school: &'static str,
        /// What.
        degree: &'static str,
    },
    /// `work_experience`.
    Job {
        /// When it began.
        start_year: i32,
        /// Where.
        company: &'static str,
        /// As what.
        title: &'static str,
        /// When it ended (`None`: current).
        end_year: Option<i32>,
    },
    /// `tags`.
    Tag(&'static str),
}

/// The rows `table` holds for `user` after `round` rounds (the last round
/// that changed the user decides).
pub fn rows(table: &str, seed: u64, user: i64, round: u64) -> Vec<Row> {
    let salt = TABLES.iter().position(|t| *t == table).unwrap_or(0) as u64;
    let mut rng =
        Rng(seed ^ (user as u64).wrapping_mul(0x9E37_79B9) ^ (round << 40) ^ (salt << 56));
    let pick = |rng: &mut Rng, list: &[&'static str]| list[rng.below(list.len() as u64) as usize];
    match table {
        "accounts" => (0..1 + rng.below(2))
            .map(|i| Row::Account {
                account_id: user * 10 + i as i64,
                kind: pick(&mut rng, &KINDS),
                balance_cents: rng.below(10_000_000) as i64,
            })
            .collect(),
        "education" => (0..1 + rng.below(2))
            .map(|_| Row::Education {
                start_year: 1995 + rng.below(25) as i32,
                school: pick(&mut rng, &SCHOOLS),
                degree: pick(&mut rng, &DEGREES),
            })
            .collect(),
        "work_experience" => (0..1 + rng.below(2))
            .map(|_| {
                let start_year = 2000 + rng.below(24) as i32;
                let ended = rng.below(2) == 0;
                Row::Job {
                    start_year,
                    company: pick(&mut rng, &COMPANIES),
                    title: pick(&mut rng, &TITLES),
                    end_year: ended.then(|| start_year + 1 + rng.below(3) as i32),
                }
            })
            .collect(),
        _ => {
            let mut tags: Vec<&'static str> =
                (0..rng.below(3)).map(|_| pick(&mut rng, &TAGS)).collect();
            tags.sort_unstable();
            tags.dedup();
            tags.into_iter().map(Row::Tag).collect()
        }
    }
}

/// The rows of `users` (each at its round) as one batch of `table`.
pub fn batch(table: &str, seed: u64, users: &[(i64, u64)]) -> RecordBatch {
    let (mut ids, mut a, mut b, mut c) = (vec![], vec![], vec![], vec![]);
    let (mut n1, mut n2, mut y1, mut y2) = (vec![], vec![], vec![], vec![]);
    for &(user, round) in users {
        for row in rows(table, seed, user, round) {
            ids.push(user);
            match row {
                Row::Account {
                    account_id,
                    kind,
                    balance_cents,
                } => {
                    n1.push(account_id);
                    a.push(kind);
                    n2.push(balance_cents);
                }
                Row::Education {
                    start_year,
                    school,
                    degree,
                } => {
                    a.push(school);
                    b.push(degree);
                    y1.push(start_year);
                }
                Row::Job {
                    start_year,
                    company,
                    title,
                    end_year,
                } => {
                    a.push(company);
                    b.push(title);
                    y1.push(start_year);
                    y2.push(end_year);
                }
                Row::Tag(tag) => c.push(tag),
            }
        }
    }
    let ints = |v: Vec<i64>| Arc::new(Int64Array::from(v)) as ArrayRef;
    let texts = |v: Vec<&str>| Arc::new(StringArray::from(v)) as ArrayRef;
    let columns: Vec<ArrayRef> = match table {
        "accounts" => vec![ints(ids), ints(n1), texts(a), ints(n2)],
        "education" => vec![
            ints(ids),
            texts(a),
            texts(b),
            Arc::new(Int32Array::from(y1)),
        ],
        "work_experience" => vec![
            ints(ids),
            texts(a),
            texts(b),
            Arc::new(Int32Array::from(y1)),
            Arc::new(Int32Array::from(y2)),
        ],
        _ => vec![ints(ids), texts(c)],
    };
    RecordBatch::try_new(schema(table), columns).expect("columns match the schema")
}

/// Writes round `round` of every related table under `dir`: round 0
/// creates the tables (Change Data Feed on) with `users`' rows; a later
/// round deletes `users`' rows and appends their new ones.
pub async fn write_round(
    dir: &Path,
    seed: u64,
    users: &[i64],
    round: u64,
) -> Result<(), DeltaError> {
    for name in TABLES {
        let path = dir.join(name);
        let failed = |operation: &'static str| {
            let table = path.clone();
            move |source| DeltaError::Delta {
                table,
                operation,
                source: Box::new(source),
            }
        };
        let mut opened = open_or_create(&path, &schema(name)).await?;
        if round > 0 && !users.is_empty() {
            let ids: Vec<String> = users.iter().map(i64::to_string).collect();
            let (deleted, _) = opened
                .delete()
                .with_predicate(format!("user_id IN ({})", ids.join(", ")))
                .await
                .map_err(failed("delete"))?;
            opened = deleted;
        }
        let at: Vec<(i64, u64)> = users.iter().map(|&u| (u, round)).collect();
        opened
            .write(vec![batch(name, seed, &at)])
            .with_save_mode(SaveMode::Append)
            .await
            .map_err(failed("append"))?;
    }
    Ok(())
}

/// The table at `path`, created with `schema` and the Change Data Feed on
/// when missing (as another system's writer would make it).
pub async fn open_or_create(path: &Path, schema: &Schema) -> Result<DeltaTable, DeltaError> {
    if let Some(existing) = table::open(path).await? {
        return Ok(existing);
    }
    let delta = table::to_delta_schema(schema).map_err(|reason| DeltaError::Schema {
        table: path.to_path_buf(),
        reason,
    })?;
    let properties =
        BTreeMap::from([("delta.enableChangeDataFeed".to_string(), "true".to_string())]);
    table::create(path, &delta, &[], &properties, vec![]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_a_pure_function_of_seed_user_and_round() {
        for table in TABLES {
            assert_eq!(rows(table, 7, 42, 1), rows(table, 7, 42, 1));
            let batch = batch(table, 7, &[(1, 0), (2, 3)]);
            assert_eq!(batch.schema(), schema(table));
        }
        let changed = (1..50).any(|u| rows("accounts", 7, u, 0) != rows("accounts", 7, u, 1));
        assert!(changed, "a later round gives other rows");
        let per_user: usize = (1..1000)
            .map(|u| TABLES.iter().map(|t| rows(t, 7, u, 0).len()).sum::<usize>())
            .sum::<usize>()
            / 999;
        assert!(
            (4..=6).contains(&per_user),
            "about five related rows per user: {per_user}"
        );
    }
}
