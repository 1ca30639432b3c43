//! The mass-delete guard: a COMMIT that deletes more resources than
//! `infra.max_deletes` (default 10) is refused before any AWS call unless
//! the session opts in with `infra.allow_mass_delete = on`. A `DELETE`
//! without a `WHERE`, or a migration that drops the wrong table's rows,
//! should not empty an account. Replaces are not counted: each deletes
//! one resource and creates another in its place.

use super::{Action, Plan, PlanError};

/// How many deleted resources the DETAIL names before it cuts the list short.
const LISTED: usize = 10;

/// `Err` when `plan` deletes more than `max` resources (the caller has
/// already found that the session did not opt in).
pub fn check_mass_delete(plan: &Plan, max: u64) -> Result<(), PlanError> {
    let deletes: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Delete)
        .collect();
    if deletes.len() as u64 <= max {
        return Ok(());
    }
    let mut names: Vec<String> = deletes
        .iter()
        .take(LISTED)
        .map(|s| match &s.name {
            Some(n) => format!("{} {} (\"{n}\")", s.table, s.id),
            None => format!("{} {}", s.table, s.id),
        })
        .collect();
    if deletes.len() > LISTED {
        names.push(format!("and {} more", deletes.len() - LISTED));
    }
    Err(PlanError::MassDelete {
        message: format!(
            "this COMMIT would delete {} resources, more than infra.max_deletes ({max})",
            deletes.len()
        ),
        detail: format!(
            "Nothing was applied; the transaction is rolled back. It deletes: {}.",
            names.join(", ")
        ),
        hint: "If you mean it, SET infra.allow_mass_delete = on (or raise infra.max_deletes) in the session and run the transaction again.".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{p, schemas};
    use super::super::{plan, RowChange};
    use super::*;
    use serde_json::json;

    fn deletes(n: usize) -> Plan {
        let changes: Vec<RowChange> = (0..n)
            .map(|i| RowChange {
                table: "aws.vpc".into(),
                before: Some(p(
                    json!({"vpc_id": format!("vpc-{i}"), "name": format!("v{i}")}),
                )),
                after: None,
            })
            .collect();
        plan(&changes, &schemas()).unwrap()
    }

    #[test]
    fn up_to_the_limit_passes_and_one_more_is_refused_with_the_list() {
        assert!(check_mass_delete(&deletes(10), 10).is_ok());
        let e = check_mass_delete(&deletes(13), 10).unwrap_err();
        assert_eq!(e.sqlstate(), "55000");
        assert!(e.to_string().contains("delete 13 resources"), "{e}");
        assert!(e.to_string().contains("infra.max_deletes (10)"), "{e}");
        let detail = e.detail().unwrap();
        assert!(detail.contains("aws.vpc vpc-0 (\"v0\")"), "{detail}");
        assert!(detail.contains("and 3 more"), "{detail}");
        assert!(e.hint().unwrap().contains("infra.allow_mass_delete = on"));
    }

    #[test]
    fn a_limit_of_zero_refuses_any_delete() {
        assert!(check_mass_delete(&deletes(0), 0).is_ok());
        assert!(check_mass_delete(&deletes(1), 0).is_err());
    }
}
