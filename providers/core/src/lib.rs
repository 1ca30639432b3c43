//! What infrasql's engine knows about a resource type, and the operations a
//! provider implements for it.
//!
//! A [`ResourceSchema`] is the one description of a table that the planner,
//! the sync loop, the read-only guard and the generated docs all read. The
//! table itself is created by a SQL file in `schema/`; at start-up infrasql
//! checks that the two agree.
//!
//! Providers know nothing of the wire or the database: they see resource
//! properties as JSON objects keyed by column name ([`Props`]).

pub mod calls;
mod column;
mod listed;
pub mod metrics;
pub mod request_ids;

use std::fmt;

use async_trait::async_trait;
use serde_json::{Map, Value};

pub use column::{Column, ColumnKind, MemberSet, ROW_KEY, STACK, STACK_TAG, SYNCED_AT};
pub use listed::Listed;

/// A resource's properties keyed by column name. Values use JSON types:
/// text, cidr and inet as strings, integers as numbers, `tags` as an object.
pub type Props = Map<String, Value>;

/// In which order a replace runs its two halves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplaceOrder {
    /// Create the new resource, then (last of all) delete the old one. The
    /// default: until the delete, a failure is undone by deleting the new
    /// resource, and the old one never went away.
    CreateFirst,
    /// Delete the old resource, then create the new one, when the new one
    /// would collide with the old: while the `unique_key` columns stay the
    /// same (a key pair's region and `key_name`), AWS would refuse the new
    /// one, for the reason `why` gives. When one of them changes there is no
    /// collision and the replace creates first after all. Only for types
    /// that hold no data: if the create fails, the undo creates the old
    /// resource again from its old values, under a new id.
    DeleteFirst {
        unique_key: &'static [&'static str],
        why: &'static str,
    },
}

/// Where a type's resources live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// In one region, named by the row's `region` column.
    Regional,
    /// In the whole account (IAM, Route53). The table's `region` column
    /// always holds [`GLOBAL_REGION`], and the sync loop lists the type
    /// once per round instead of once per region.
    Global,
}

/// The `region` of every row of a [`Scope::Global`] type.
pub const GLOBAL_REGION: &str = "global";

/// The description of one resource table.
#[derive(Debug)]
pub struct ResourceSchema {
    /// Database schema holding the table (the provider's name, e.g. `aws`).
    pub schema: &'static str,
    /// Table name, e.g. `vpc`.
    pub table: &'static str,
    /// What AWS calls it, for messages: "VPC", "security group".
    pub display: &'static str,
    pub doc: &'static str,
    pub columns: &'static [Column],
    pub replace_order: ReplaceOrder,
    /// Whether the type lives in a region or in the whole account.
    pub scope: Scope,
    /// The columns that tell one resource of a stack from another (its
    /// natural key): `name` for most types, the defining fields for rules,
    /// routes and associations. A stack's files find what they declare by
    /// it; NULLs compare equal.
    pub natural_key: &'static [&'static str],
    /// For a type that holds data a replace would destroy, what would be
    /// lost ("the files on its root volume"); `None` when it holds none. A
    /// replace of such a resource needs `SET infra.allow_replace = on`.
    pub stateful: Option<&'static str>,
}

impl ResourceSchema {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
    pub fn id_column(&self) -> &'static str {
        self.columns
            .iter()
            .find(|c| matches!(c.kind, ColumnKind::Identity | ColumnKind::Name))
            .map(|c| c.name)
            .expect("every resource schema has an identity column")
    }
    /// Every column of the table: the row key and the stack, then the provider's columns
    /// (sets live in their join tables, not here).
    pub fn table_columns(&self) -> impl Iterator<Item = &Column> {
        [&ROW_KEY, &STACK]
            .into_iter()
            .chain(self.columns.iter().filter(|c| c.set.is_none()))
    }
    /// The sets of references kept in join tables.
    pub fn member_sets(&self) -> impl Iterator<Item = (&Column, MemberSet)> {
        self.columns.iter().filter_map(|c| c.set.map(|s| (c, s)))
    }
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
    pub fn references(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.references.is_some())
    }
    /// Whether a replace deletes the old resource first, given which columns
    /// the change touches.
    pub fn deletes_first(&self, changed: impl Fn(&str) -> bool) -> bool {
        match self.replace_order {
            ReplaceOrder::CreateFirst => false,
            ReplaceOrder::DeleteFirst { unique_key, .. } => !unique_key.iter().any(|c| changed(c)),
        }
    }
    /// One line for the generated docs: how a replace runs, and what it
    /// would destroy.
    pub fn replace_doc(&self) -> String {
        let d = self.display;
        let mut out = match self.replace_order {
            ReplaceOrder::CreateFirst => {
                format!("**Replace:** the new {d} is created, then the old one deleted.")
            }
            ReplaceOrder::DeleteFirst { unique_key, why } => format!(
                "**Replace:** while {} stay the same, the old {d} is deleted first ({why}), \
                 then the new one created; otherwise the new one is created first.",
                match unique_key.split_last() {
                    Some((last, rest)) if !rest.is_empty() =>
                        format!("{} and {last}", rest.join(", ")),
                    _ => unique_key.join(""),
                }
            ),
        };
        if let Some(lost) = self.stateful {
            out.push_str(&format!(
                " A replace would destroy {lost}, so it needs `SET infra.allow_replace = on`; a DELETE does not."
            ));
        }
        out
    }
    /// What a description promises that the type system cannot check:
    /// delete-first only for types without data, on columns that exist and
    /// force a replace. Tests run it over every provider's descriptions.
    pub fn check(&self) -> Result<(), String> {
        if let ReplaceOrder::DeleteFirst { unique_key, .. } = self.replace_order {
            if let Some(lost) = self.stateful {
                return Err(format!(
                    "{}: delete-first replace of a type that holds data ({lost})",
                    self.qualified()
                ));
            }
            for k in unique_key {
                match self.column(k) {
                    Some(c) if c.kind == ColumnKind::ReplaceOnChange => {}
                    _ => {
                        return Err(format!(
                            "{}: unique_key column {k} is not a replace-on-change column",
                            self.qualified()
                        ))
                    }
                }
            }
        }
        Ok(())
    }
}

/// Why a provider call failed, sorted so the engine can decide what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient (5xx, timeouts): worth retrying.
    Retryable,
    /// Rate limited after the SDK's own retries.
    Throttled,
    /// The resource does not exist.
    NotFound,
    /// Conflicts with existing state (duplicate, overlap, dependency).
    Conflict,
    /// The request itself is invalid (bad parameter value).
    Invalid,
    /// Not authorised.
    Denied,
}

#[derive(Debug, Clone)]
pub struct ProviderError {
    pub class: ErrorClass,
    /// The cloud's own error code, e.g. `InvalidSubnet.Conflict`.
    pub code: String,
    pub message: String,
    /// What the user can do about it, where the provider knows better than
    /// the class's general advice (a non-empty bucket: `force_destroy`).
    pub hint: Option<String>,
}

impl ProviderError {
    pub fn new(class: ErrorClass, code: impl Into<String>, message: impl Into<String>) -> Self {
        ProviderError {
            class,
            code: code.into(),
            message: message.into(),
            hint: None,
        }
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Invalid, "InvalidParameterValue", message)
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ProviderError {}

/// What a mutating call needs besides the resource's own properties.
#[derive(Debug, Clone)]
pub struct ApplyContext {
    pub region: String,
    /// Tagged onto every created resource so a crashed apply can be recovered.
    pub apply_id: String,
}

/// The tag key carrying the apply id on every resource infrasql creates.
pub const APPLY_TAG: &str = "infrasql:apply-id";

/// One resource type's operations.
///
/// `create` and `update` return the resource as the cloud now reports it,
/// with the same keys `list` returns: identity, desired and cloud-assigned
/// columns (never write-only ones).
///
/// Every HTTP request an operation sends to the cloud, retries included,
/// must be reported with [`calls::note_call`] as it is sent: the sync loop
/// counts a listing's requests with [`calls::count_calls`] and records them
/// (`infra.sync_status.api_calls`). An unreported request is invisible there.
#[async_trait]
pub trait Resource: Send + Sync {
    fn schema(&self) -> &'static ResourceSchema;
    /// Every resource of this type in `region`, following all pages, each
    /// kept as text as it arrives ([`Listed`]).
    async fn list(&self, region: &str) -> Result<Listed, ProviderError>;
    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError>;
    async fn update(
        &self,
        ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError>;
    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        current: &Props,
    ) -> Result<(), ProviderError>;
    /// Whether a resource `create` returned (`created`) is ready for use.
    /// One look, no waiting: the engine polls with backoff, reports
    /// progress while it waits and can stop waiting (a cancel, a timeout,
    /// `infra.wait = 'accepted'`). Types that are ready once created keep
    /// this default.
    async fn ready(
        &self,
        _ctx: &ApplyContext,
        _id: &str,
        _created: &Props,
    ) -> Result<Readiness, ProviderError> {
        Ok(Readiness::Ready(None))
    }
}

/// The answer of [`Resource::ready`].
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    /// Ready; with the resource as the cloud now reports it, or `None` when
    /// what `create` returned still holds.
    Ready(Option<Props>),
    /// Not yet; `status` is the cloud's word for where it is (`pending`).
    Pending { status: String },
}

/// Helpers for reading props.
pub trait PropsExt {
    fn str(&self, key: &str) -> Option<&str>;
    fn req_str(&self, key: &str) -> Result<&str, ProviderError>;
    fn bool(&self, key: &str) -> Option<bool>;
    fn i64(&self, key: &str) -> Option<i64>;
    /// A set column as the engine hands it over (a JSON array of ids, from
    /// its join table), sorted and without repeats; `None` when the row
    /// does not carry it.
    fn id_set(&self, key: &str) -> Option<Vec<String>>;
}

impl PropsExt for Props {
    fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
    fn req_str(&self, key: &str) -> Result<&str, ProviderError> {
        self.str(key)
            .ok_or_else(|| ProviderError::invalid(format!("{key} is required")))
    }
    fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }
    fn i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }
    fn id_set(&self, key: &str) -> Option<Vec<String>> {
        let Some(Value::Array(a)) = self.get(key) else {
            return None;
        };
        let mut ids: Vec<String> = a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Some(ids)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_set_is_its_ids_sorted_once_each_and_absent_when_not_handed_over() {
        let p = json!({"ids": ["sg-b", "sg-a", "sg-b", 7], "name": "x"});
        let p = p.as_object().unwrap();
        assert_eq!(p.id_set("ids"), Some(vec!["sg-a".into(), "sg-b".into()]));
        assert_eq!(p.id_set("missing"), None);
        // A column that is not an array is not a set the engine handed over.
        assert_eq!(p.id_set("name"), None);
    }
}
