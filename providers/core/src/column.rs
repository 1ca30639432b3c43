//! A resource table's columns: what each one is to the cloud (its kind),
//! its references and sets, and the two columns every table has beside its
//! provider's (`row_key`, `stack`).

use serde_json::Value;

use crate::Props;

/// How a column relates to the cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    /// The row's own key ([`ROW_KEY`]): assigned by the database, never changed,
    /// never sent to AWS.
    RowKey,
    /// The stack the resource belongs to ([`STACK`]): written by stack runs
    /// (`schema/0760_stacks.sql`), kept in AWS as the `infrasql:stack` tag
    /// where the type has tags, so a re-import finds it.
    Stack,
    /// The resource's id: provisional until AWS assigns the real one.
    Identity,
    /// The resource's id when the user chooses it (an RDS identifier, a
    /// DB subnet group's name): written on INSERT, never provisional. An
    /// UPDATE of it renames the resource in place where AWS can (the
    /// provider's `update` sees the old name in `before`); a type AWS
    /// cannot rename refuses the change in its schema file.
    Name,
    /// Desired state that can be changed in place.
    Desired,
    /// Desired state whose change forces a replace (create new, delete old).
    ReplaceOnChange,
    /// Assigned or reported by the cloud (state, owner, ARN...); read-only to users.
    CloudAssigned,
    /// A secret used for the API call, never stored.
    WriteOnly,
    /// A set of references kept as rows of a join table ([`MemberSet`]),
    /// not as a column of the resource's own table. The provider sees it
    /// as a JSON array of ids in [`Props`]; changed in place.
    Set,
}

impl ColumnKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnKind::RowKey => "row_key",
            ColumnKind::Stack => "stack",
            ColumnKind::Identity => "identity",
            ColumnKind::Name => "name",
            ColumnKind::Desired => "desired",
            ColumnKind::ReplaceOnChange => "replace",
            ColumnKind::CloudAssigned => "cloud",
            ColumnKind::WriteOnly => "write_only",
            ColumnKind::Set => "member_set",
        }
    }
    /// Columns a user writes.
    pub fn is_desired(self) -> bool {
        matches!(
            self,
            ColumnKind::Name
                | ColumnKind::Desired
                | ColumnKind::ReplaceOnChange
                | ColumnKind::WriteOnly
                | ColumnKind::Set
        )
    }
}

/// Where a [`ColumnKind::Set`] column lives: one row per member in a
/// join table of the same provider schema, `(owner, member)` unique, both
/// foreign keys `ON UPDATE CASCADE` (so provisional ids are followed) and
/// the owner's `ON DELETE CASCADE`. SQL joins work on it; the engine folds
/// its row changes into the owner's plan step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberSet {
    /// The join table, e.g. `instance_security_group`.
    pub table: &'static str,
    /// The column holding the owner's AWS id, e.g. `instance_id`.
    pub owner: &'static str,
    /// The column holding the member's AWS id, e.g. `group_id`.
    pub member: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnKind,
    /// The table (in the same provider schema) whose identity this column holds.
    pub references: Option<&'static str>,
    /// For a [`ColumnKind::Set`] column: its join table.
    pub set: Option<MemberSet>,
    pub doc: &'static str,
}

impl Column {
    pub const fn new(name: &'static str, kind: ColumnKind, doc: &'static str) -> Column {
        Column {
            name,
            kind,
            references: None,
            set: None,
            doc,
        }
    }
    pub const fn reference(
        name: &'static str,
        kind: ColumnKind,
        table: &'static str,
        doc: &'static str,
    ) -> Column {
        Column {
            name,
            kind,
            references: Some(table),
            set: None,
            doc,
        }
    }
    /// A set of references to `table`, kept in the join table `set`.
    pub const fn member_set(
        name: &'static str,
        table: &'static str,
        set: MemberSet,
        doc: &'static str,
    ) -> Column {
        Column {
            name,
            kind: ColumnKind::Set,
            references: Some(table),
            set: Some(set),
            doc,
        }
    }
    /// The ids a row's value of this column names: one for a reference,
    /// every element for a set.
    pub fn ids<'a>(&self, props: &'a Props) -> Vec<&'a str> {
        match props.get(self.name) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

/// The stable key every resource table has besides its AWS id. ORMs key rows
/// on the primary key and take a changed key for a deleted row, and the AWS id
/// changes at COMMIT (provisional → real), so the primary key is this column
/// instead (`schema/0510_stable_keys.sql`). The engine adds it to every
/// description ([`ResourceSchema::table_columns`]); providers never list it,
/// and ignore it where [`Props`] made from a row carry it.
pub const ROW_KEY: Column = Column::new(
    "id",
    ColumnKind::RowKey,
    "The row's own key, assigned by the database; it never changes, so ORMs can key on it (the AWS id changes at COMMIT)",
);

/// The stack column every resource table has besides its AWS id; added by
/// the engine like [`ROW_KEY`]. Providers of types with tags map it to the
/// [`STACK_TAG`] tag; NULL is no stack.
pub const STACK: Column = Column::new(
    "stack",
    ColumnKind::Stack,
    "The stack whose files declare this resource (NULL: none); set by stack runs, kept in AWS as the infrasql:stack tag where the type has tags",
);

/// Every resource table's `synced_at` column: when the row was last written
/// (`infra.resource_confirmed` says when it was last confirmed).
pub const SYNCED_AT: Column = Column::new(
    "synced_at",
    ColumnKind::CloudAssigned,
    "When sync or a COMMIT last wrote this row: a sync round writes only rows that changed; infra.resource_confirmed says when it was last confirmed equal to AWS",
);

/// The tag that records a resource's stack in AWS.
pub const STACK_TAG: &str = "infrasql:stack";
