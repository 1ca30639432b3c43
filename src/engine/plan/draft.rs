//! A row change on its way to becoming a step: its action, the fields that
//! changed and its AWS id, and how it is written out as a [`Step`].

use infrasql_provider::{Props, ResourceSchema};
use serde_json::Value;

use super::{Action, FieldChange, RowChange, Step};

pub(super) struct Draft {
    pub(super) action: Action,
    pub(super) change: RowChange,
    pub(super) fields: Vec<FieldChange>,
    pub(super) schema: &'static ResourceSchema,
    pub(super) id: String,
}

impl Draft {
    /// The AWS id of the row before the transaction, if it existed.
    pub(super) fn before_id(&self) -> Option<&str> {
        self.change
            .before
            .as_ref()
            .and_then(|b| b.get(self.schema.id_column()))
            .and_then(Value::as_str)
    }
    pub(super) fn row(&self) -> &Props {
        self.change
            .after
            .as_ref()
            .or(self.change.before.as_ref())
            .expect("netted changes have a row")
    }
}

pub(super) fn make_step(
    n: usize,
    action: Action,
    d: &Draft,
    depends_on: Vec<usize>,
    last_phase: bool,
) -> Step {
    // A delete (or the delete half of a replace) acts on the resource as
    // it is: the row before the transaction, whose id and region may differ
    // from the new row's (a replace that also renames, or moves region).
    let deletes = matches!(action, Action::Delete | Action::RecreateDelete)
        || (action == Action::Replace && last_phase);
    let row = match (&d.change.before, deletes) {
        (Some(b), true) => b,
        _ => d.row(),
    };
    let id = match deletes {
        true => d.before_id().unwrap_or(&d.id).to_owned(),
        false => d.id.clone(),
    };
    Step {
        step: n,
        action,
        table: d.change.table.clone(),
        id,
        name: row.get("name").and_then(Value::as_str).map(str::to_owned),
        region: row
            .get("region")
            .and_then(Value::as_str)
            .unwrap_or("us-east-1")
            .to_owned(),
        before: d.change.before.clone(),
        after: d.change.after.clone(),
        changes: d.fields.clone(),
        depends_on,
        last_phase,
    }
}
