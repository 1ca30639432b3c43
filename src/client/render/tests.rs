use super::*;

fn view() -> PlanView {
    let row = |step, action: &str, id: &str, changes: Value| PlanRow {
        step,
        action: action.into(),
        table: "aws.vpc".into(),
        resource_id: id.into(),
        name: Some("main".into()),
        region: "us-east-1".into(),
        changes: changes.as_object().unwrap().clone(),
        depends_on: Vec::new(),
    };
    let kinds = [
        ("vpc_id", "identity"),
        ("cidr_block", "replace"),
        ("owner_id", "cloud"),
        ("secret", "write_only"),
    ]
    .iter()
    .map(|(c, k)| (("aws.vpc".to_string(), c.to_string()), k.to_string()))
    .collect();
    PlanView {
        rows: vec![
            row(
                1,
                "create",
                "pending-vpc-1",
                json!({"cidr_block": {"before": null, "after": "10.0.0.0/16"}, "secret": {"before": null, "after": "(secret)"}}),
            ),
            row(
                2,
                "replace (create new)",
                "vpc-2",
                json!({"cidr_block": {"before": "10.1.0.0/16", "after": "10.2.0.0/16"}}),
            ),
            row(
                3,
                "replace (delete old)",
                "vpc-2",
                json!({"cidr_block": {"before": "10.1.0.0/16", "after": "10.2.0.0/16"}}),
            ),
        ],
        kinds,
        verdicts: Vec::new(),
    }
}

#[test]
fn a_replace_is_one_change_with_its_reason() {
    let changes = view().changes();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1].actions, vec!["delete", "create"]);
    assert_eq!(
        changes[1].replace_reason.as_deref(),
        Some("changing cidr_block forces a new resource")
    );
    assert_eq!(
        summary(&changes),
        "1 to create, 0 to update, 1 to replace, 0 to delete"
    );
}

#[test]
fn secrets_are_sensitive_and_cloud_values_unknown() {
    let j = to_json(&view().changes());
    let create = &j["resource_changes"][0];
    assert_eq!(create["id"], UNKNOWN);
    assert_eq!(create["change"]["after"]["secret"], SENSITIVE);
    assert_eq!(create["change"]["after"]["owner_id"], UNKNOWN);
    assert_eq!(create["change"]["before"], Value::Null);
    let md = render(&view(), Format::Markdown);
    assert!(md.starts_with("**Plan:** 1 to create, 0 to update, 1 to replace, 0 to delete\n"));
    assert!(md.contains("cidr_block: 10.1.0.0/16 → 10.2.0.0/16"));
}

#[test]
fn markdown_embeds_the_graph_after_the_summary() {
    let md = render(&view(), Format::Markdown);
    let (summary, rest) = md.split_once('\n').unwrap();
    assert!(summary.starts_with("**Plan:**"), "{md}");
    assert!(rest.starts_with("\n```mermaid\nflowchart RL\n"), "{md}");
    let (graph, tables) = rest
        .split_once("```\n\n### `aws.vpc`")
        .expect("tables follow");
    assert!(
        graph.contains("r1[\"create aws.vpc<br>main<br>(known after apply), us-east-1\"]:::create"),
        "{graph}"
    );
    assert!(tables.contains("| replace | main | vpc-2 |"), "{md}");
    let empty = PlanView::default();
    assert!(!render(&empty, Format::Markdown).contains("mermaid"));
}

#[test]
fn graph_formats_carry_the_verdicts_as_comments() {
    let mut v = view();
    v.verdicts.push(Verdict {
        policy: "owner".into(),
        severity: "deny".into(),
        message: "needs an owner\nreally".into(),
        resource_id: None,
        offending: None,
        error: None,
    });
    let dot = render(&v, Format::Dot);
    // Each line of a message is a comment of its own.
    assert!(
        dot.contains("  // ! policy owner (deny): needs an owner\n  // really: -\n"),
        "{dot}"
    );
    let mermaid = render(&v, Format::Mermaid);
    assert!(
        mermaid.contains("  %% Policies: COMMIT would be refused.\n"),
        "{mermaid}"
    );
}
