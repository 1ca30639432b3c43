//! What a pair's last round found equal to AWS, so that a steady round
//! need not read those rows again (issue #15: PostgreSQL's CPU per steady
//! round).
//!
//! A round's decision about a row depends only on the row, the listed
//! resource and the columns the listing reports for every resource (in
//! the comparisons that can end in "keep": `diff::changed`). So a row
//! whose tuple is the same version (`xmin` and `ctid`: any write makes a
//! new tuple, and no two transactions share an xmin) and whose listed
//! resource hashes the same as when it was last kept, with the same
//! reported columns, is kept again without being read. The database then
//! sends only each row's id and version instead of `to_jsonb` of it.
//!
//! Kept in memory only, per (table, region), and only after the round's
//! transaction committed: a restart or a failed round reads every row.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Mutex, OnceLock};

use infrasql_provider::Props;

use super::diff::{Diff, RowWrite};

/// A tuple's version: its `xmin` and `ctid`, as text.
pub(super) type Version = Box<str>;

/// The rows one pair's last round kept, with what they were kept for.
#[derive(Debug, Default)]
pub(super) struct PairKnown {
    /// The columns the listing reported for every resource then.
    cols: Vec<&'static str>,
    /// Row id → (tuple version, hash of the listed resource).
    rows: HashMap<String, (Version, u64)>,
}

impl PairKnown {
    /// The rows a round kept (`RowWrite::Keep`) without drift: one with
    /// drift is judged again each round (a failed revert is retried).
    /// `versions` holds what the round read, `idc` names the id in
    /// `observed`.
    pub(super) fn kept(
        d: &Diff,
        idc: &str,
        versions: &HashMap<String, Version>,
        observed: &[Props],
        hashes: &ListedHashes,
    ) -> Self {
        let at = listed_at(idc, observed);
        let drifted: HashSet<&str> = d
            .drift
            .iter()
            .map(|r| r.id.as_str())
            .chain(d.reverts.iter().map(|r| r.id.as_str()))
            .collect();
        let rows = d
            .writes
            .iter()
            .filter_map(|w| match w {
                RowWrite::Keep { id } if !drifted.contains(id.as_str()) => Some(id),
                _ => None,
            })
            .filter_map(|id| {
                let version = versions.get(id)?;
                let i = *at.get(id.as_str())?;
                Some((id.clone(), (version.clone(), hashes.of(i, &observed[i]))))
            })
            .collect();
        PairKnown {
            cols: d.observed_cols.clone(),
            rows,
        }
    }

    /// Whether the row `id` at `version`, listed with the hash `listed`
    /// (asked for only when the version is the kept one), is what was kept.
    pub(super) fn same(
        &self,
        cols: &[&'static str],
        id: &str,
        version: &str,
        listed: impl FnOnce() -> u64,
    ) -> bool {
        self.cols == cols
            && self
                .rows
                .get(id)
                .is_some_and(|(v, h)| &**v == version && *h == listed())
    }
}

/// Every pair's [`PairKnown`].
#[derive(Debug, Default)]
pub(super) struct Known(Mutex<HashMap<(String, String), PairKnown>>);

impl Known {
    /// Taken out for the round: if the round fails, nothing is known.
    pub(super) fn take(&self, table: &str, region: &str) -> Option<PairKnown> {
        self.lock().remove(&(table.to_owned(), region.to_owned()))
    }

    /// After the round's transaction committed.
    pub(super) fn put(&self, table: &str, region: &str, known: PairKnown) {
        self.lock()
            .insert((table.to_owned(), region.to_owned()), known);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), PairKnown>> {
        self.0.lock().expect("known rows lock poisoned")
    }
}

/// Where each listed resource is in the listing, by its id (column `idc`).
pub(super) fn listed_at<'a>(idc: &str, observed: &'a [Props]) -> HashMap<&'a str, usize> {
    observed
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((p.get(idc)?.as_str()?, i)))
        .collect()
}

/// Each listed resource's hash, computed at most once a round: the read
/// asks for those of the rows the last round kept, and `kept` for those
/// this round keeps, which in a steady round are the same resources.
#[derive(Debug, Default)]
pub struct ListedHashes(Vec<OnceLock<u64>>);

impl ListedHashes {
    /// For a listing of `n` resources.
    pub fn new(n: usize) -> Self {
        Self((0..n).map(|_| OnceLock::new()).collect())
    }

    /// The hash of `p`, the listing's resource at `at`.
    pub(super) fn of(&self, at: usize, p: &Props) -> u64 {
        match self.0.get(at) {
            Some(cell) => *cell.get_or_init(|| listed_hash(p)),
            None => listed_hash(p),
        }
    }
}

/// A listed resource's hash: of its JSON text (one provider spells a
/// resource the same way each time), streamed into the hasher. The hasher
/// is seeded once per process at random: equal within the process, which
/// is as long as anything is known, and not predictable from outside.
fn listed_hash(p: &Props) -> u64 {
    static SEED: OnceLock<foldhash::quality::RandomState> = OnceLock::new();
    struct Sink(foldhash::quality::FoldHasher<'static>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.write(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut sink = Sink(SEED.get_or_init(Default::default).build_hasher());
    // Writing a map of JSON values to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut sink, p);
    p.len().hash(&mut sink.0);
    sink.0.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: serde_json::Value) -> Props {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_kept_row_is_the_same_only_at_its_version_and_listing() {
        let listed = vec![
            props(json!({"vpc_id": "vpc-1", "cidr": "10.0.0.0/16"})),
            props(json!({"vpc_id": "vpc-2", "cidr": "10.1.0.0/16"})),
        ];
        let versions: HashMap<String, Version> = HashMap::from([
            ("vpc-1".to_owned(), "7(0,1)".into()),
            ("vpc-2".to_owned(), "7(0,2)".into()),
        ]);
        let cols = ["vpc_id", "cidr"];
        let d = Diff {
            writes: vec![
                RowWrite::Keep { id: "vpc-1".into() },
                RowWrite::Delete { id: "vpc-2".into() },
            ],
            observed_cols: cols.to_vec(),
            ..Default::default()
        };
        let k = PairKnown::kept(&d, "vpc_id", &versions, &listed, &ListedHashes::default());
        assert!(k.same(&cols, "vpc-1", "7(0,1)", || listed_hash(&listed[0])));
        // Only kept rows are known.
        assert!(!k.same(&cols, "vpc-2", "7(0,2)", || listed_hash(&listed[1])));
        // A new tuple, a changed resource or other reported columns: read.
        assert!(!k.same(&cols, "vpc-1", "8(0,3)", || listed_hash(&listed[0])));
        let mut changed = listed[0].clone();
        changed.insert("cidr".into(), json!("10.9.0.0/16"));
        assert!(!k.same(&cols, "vpc-1", "7(0,1)", || listed_hash(&changed)));
        assert!(!k.same(&["vpc_id"], "vpc-1", "7(0,1)", || listed_hash(&listed[0])));
    }

    #[test]
    fn a_kept_row_with_drift_is_judged_again() {
        let listed = vec![props(json!({"vpc_id": "vpc-1"}))];
        let versions: HashMap<String, Version> =
            HashMap::from([("vpc-1".to_owned(), "7(0,1)".into())]);
        let d = Diff {
            writes: vec![RowWrite::Keep { id: "vpc-1".into() }],
            drift: vec![super::super::diff::DriftRecord {
                kind: super::super::diff::DriftKind::Changed,
                id: "vpc-1".into(),
                field: Some("name"),
                known: json!("a"),
                actual: json!("b"),
                policy: super::super::policy::Policy::Report,
            }],
            observed_cols: vec!["vpc_id"],
            ..Default::default()
        };
        let k = PairKnown::kept(&d, "vpc_id", &versions, &listed, &ListedHashes::default());
        assert!(!k.same(&["vpc_id"], "vpc-1", "7(0,1)", || listed_hash(&listed[0])));
    }
}
