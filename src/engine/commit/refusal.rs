//! What a refused COMMIT tells the user, and whether its apply is settled:
//! pure, from the apply's failure.

use std::fmt::Write as _;

use infrasql_provider::ErrorClass;

use crate::engine::apply::{ApplyFailure, StepError};
use crate::engine::errors;
use crate::engine::journal::ApplyId;
use crate::engine::plan::Action;
use crate::engine::report::Report;
use crate::engine::stop::StopReason;

/// Settled at once (`failed`), or left to recovery (`undoing`): not while
/// part of the undo failed, nor while a create whose answer was lost (or
/// that was abandoned mid-call) may have happened after all; recovery then
/// settles it from the journal and the tags.
pub(super) fn settled_now(f: &ApplyFailure) -> bool {
    let creates = matches!(
        (f.step.action, f.step.last_phase),
        (Action::Create | Action::RecreateCreate, _) | (Action::Replace, false)
    );
    let maybe_created = (creates
        && matches!(&f.error, StepError::Cloud(e) if e.class == ErrorClass::Retryable))
        || matches!(&f.error, StepError::Stopped { in_call: true, .. });
    f.not_undone.is_empty() && !maybe_created
}

/// The COMMIT's error: the resource, the cause with its class's SQLSTATE,
/// and in DETAIL what was undone and what is not yet.
pub(super) fn report(f: &ApplyFailure, display: &str, apply_id: &ApplyId) -> Report {
    let verb = match (f.step.action, f.step.last_phase) {
        (Action::Create, _) | (Action::Replace, false) | (Action::RecreateCreate, _) => "create",
        (Action::Update, _) => "update",
        (Action::Delete, _) | (Action::Replace, true) | (Action::RecreateDelete, _) => "delete",
    };
    let name = f
        .step
        .name
        .as_deref()
        .map(|n| format!(" \"{n}\""))
        .unwrap_or_default();
    let mut detail = String::new();
    if f.undone.is_empty() {
        detail.push_str("Nothing had to be undone.");
    } else {
        let _ = write!(detail, "Undone: {}.", f.undone.join("; "));
    }
    if let StepError::Stopped { in_call: true, .. } = &f.error {
        let _ = write!(
            detail,
            " The {verb} of {} {} was abandoned while AWS was carrying it out; infrasql deletes what it made (see infra.apply).",
            f.step.table, f.step.id
        );
    }
    if !f.not_undone.is_empty() {
        let _ = write!(
            detail,
            " Not undone yet: {}; infrasql keeps retrying (see infra.apply).",
            f.not_undone.join("; ")
        );
    }
    let _ = write!(
        detail,
        " Apply {apply_id} is journaled in infra.apply_action."
    );
    match &f.error {
        StepError::Cloud(e) => Report::error(
            errors::sqlstate(e.class),
            format!(
                "AWS refused to {verb} {display}{name} ({} {}): {}: {}",
                f.step.table, f.step.id, e.code, e.message
            ),
        )
        .with_hint(e.hint.as_deref().unwrap_or(errors::hint(e.class))),
        StepError::Journal(e) => Report::error(
            errors::INFRASQL_FAILED,
            format!(
                "infrasql could not {verb} {display}{name} ({} {}): {e}",
                f.step.table, f.step.id
            ),
        )
        .with_hint(errors::INFRASQL_FAILED_HINT),
        StepError::Stopped { reason, .. } => stopped(reason, apply_id),
    }
    .with_detail(detail)
}

/// A COMMIT whose apply was stopped: PostgreSQL's own code for a canceled
/// statement, so drivers treat it as they treat a canceled query.
fn stopped(reason: &StopReason, apply_id: &ApplyId) -> Report {
    let report = Report::error(
        errors::QUERY_CANCELED,
        format!("COMMIT {reason}: apply {apply_id} was stopped and undone"),
    );
    match reason {
        StopReason::Timeout(_) => report.with_hint(
            "Raise infra.apply_timeout, or SET infra.wait = 'accepted' so COMMIT returns once AWS has accepted the requests.",
        ),
        _ => report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::Step;
    use infrasql_provider::ProviderError;

    fn failure(action: Action, error: StepError, not_undone: Vec<String>) -> ApplyFailure {
        ApplyFailure {
            step: Step {
                step: 1,
                action,
                table: "aws.vpc".into(),
                id: "vpc-1".into(),
                name: Some("main".into()),
                region: "us-east-1".into(),
                before: None,
                after: None,
                changes: Vec::new(),
                depends_on: Vec::new(),
                last_phase: action == Action::Delete,
            },
            error,
            undone: vec!["deleted aws.subnet subnet-1".into()],
            not_undone,
        }
    }

    fn cloud(class: ErrorClass, code: &str) -> StepError {
        StepError::Cloud(ProviderError::new(class, code, "no"))
    }

    #[test]
    fn a_refusal_names_the_resource_and_awss_code_with_its_class() {
        let f = failure(
            Action::Create,
            cloud(ErrorClass::Conflict, "VpcLimitExceeded"),
            vec![],
        );
        let r = report(&f, "VPC", &ApplyId::generate());
        assert_eq!(r.code, "IX001");
        assert!(
            r.message.starts_with(
                "AWS refused to create VPC \"main\" (aws.vpc vpc-1): VpcLimitExceeded"
            ),
            "{}",
            r.message
        );
        let detail = r.detail.unwrap();
        assert!(
            detail.starts_with("Undone: deleted aws.subnet subnet-1."),
            "{detail}"
        );
        assert!(settled_now(&f));
    }

    #[test]
    fn a_lost_create_answer_or_a_failed_undo_is_left_to_recovery() {
        let lost = failure(
            Action::Create,
            cloud(ErrorClass::Retryable, "InternalError"),
            vec![],
        );
        assert!(!settled_now(&lost));
        let update = failure(
            Action::Update,
            cloud(ErrorClass::Retryable, "InternalError"),
            vec![],
        );
        assert!(settled_now(&update));
        let stuck = failure(
            Action::Update,
            cloud(ErrorClass::Invalid, "InvalidParameterValue"),
            vec!["aws.vpc vpc-2 could not be undone".into()],
        );
        assert!(!settled_now(&stuck));
        assert!(report(&stuck, "VPC", &ApplyId::generate())
            .detail
            .unwrap()
            .contains("Not undone yet: aws.vpc vpc-2 could not be undone"));
    }

    #[test]
    fn a_stopped_apply_is_57014_and_an_abandoned_create_waits_for_recovery() {
        let f = failure(
            Action::Create,
            StepError::Stopped {
                reason: StopReason::Timeout(std::time::Duration::from_secs(2)),
                in_call: true,
            },
            vec![],
        );
        let r = report(&f, "VPC", &ApplyId::generate());
        assert_eq!(r.code, "57014");
        assert!(r.hint.unwrap().contains("infra.apply_timeout"));
        assert!(r
            .detail
            .unwrap()
            .contains("was abandoned while AWS was carrying it out"));
        assert!(!settled_now(&f));
    }
}
