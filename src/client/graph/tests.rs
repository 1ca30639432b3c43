use serde_json::Map;

use super::*;

fn row(
    step: i64,
    action: &str,
    table: &str,
    id: &str,
    name: Option<&str>,
    deps: &[i64],
) -> PlanRow {
    PlanRow {
        step,
        action: action.into(),
        table: table.into(),
        resource_id: id.into(),
        name: name.map(str::to_owned),
        region: "us-east-1".into(),
        changes: Map::new(),
        depends_on: deps.to_vec(),
    }
}

/// VPC, subnet, security group and a rule on the group, as the planner
/// orders their creates.
fn network() -> Vec<PlanRow> {
    vec![
        row(1, "create", "aws.vpc", "pending-vpc-1", Some("net"), &[]),
        row(
            2,
            "create",
            "aws.subnet",
            "pending-subnet-2",
            Some("net-a"),
            &[1],
        ),
        row(
            3,
            "create",
            "aws.security_group",
            "pending-sg-3",
            Some("web"),
            &[1],
        ),
        row(
            4,
            "create",
            "aws.security_group_rule",
            "pending-sgr-4",
            None,
            &[3],
        ),
    ]
}

fn edges(g: &Graph) -> Vec<(i64, i64, EdgeKind)> {
    g.edges.iter().map(|e| (e.from, e.to, e.kind)).collect()
}

#[test]
fn creates_point_at_what_they_reference() {
    let g = from_plan(&network());
    assert_eq!(
        edges(&g),
        vec![
            (2, 1, EdgeKind::Needs),
            (3, 1, EdgeKind::Needs),
            (4, 3, EdgeKind::Needs)
        ]
    );
    let dot = dot(&g, &[]);
    assert!(
        dot.contains("  r2 [label=\"create aws.subnet\\nnet-a\\n(known after apply), us-east-1\", fillcolor=\"#c6efce\", color=\"#2e7d32\"];\n"),
        "{dot}"
    );
    assert!(
        dot.contains("  r2 -> r1;\n  r3 -> r1;\n  r4 -> r3;\n"),
        "{dot}"
    );
    assert!(dot.contains("legend_create [label=\"create\""), "{dot}");
    assert!(
        !dot.contains("legend_delete"),
        "only the actions present: {dot}"
    );
    let m = mermaid(&g, &[]);
    assert!(m.starts_with("flowchart RL\n"), "{m}");
    assert!(
        m.contains(
            "  r4[\"create aws.security_group_rule<br>(known after apply), us-east-1\"]:::create\n"
        ),
        "{m}"
    );
    assert!(m.contains("  r2 --> r1\n  r3 --> r1\n  r4 --> r3\n"), "{m}");
    assert!(
        m.contains("  classDef create fill:#c6efce,stroke:#2e7d32,color:#000\n"),
        "{m}"
    );
}

#[test]
fn deletes_point_the_way_the_apply_runs_them() {
    // Children first: the VPC's delete waits for the subnet's.
    let g = from_plan(&[
        row(1, "delete", "aws.subnet", "subnet-1", Some("a"), &[]),
        row(2, "delete", "aws.vpc", "vpc-1", Some("net"), &[1]),
    ]);
    assert_eq!(edges(&g), vec![(2, 1, EdgeKind::Teardown)]);
    assert_eq!(g.nodes[0].resource_id.as_deref(), Some("subnet-1"));
    let dot = dot(&g, &[]);
    assert!(dot.contains("  r2 -> r1 [style=dashed];\n"), "{dot}");
    assert!(
        dot.contains("fillcolor=\"#ffc7ce\", color=\"#c62828\""),
        "{dot}"
    );
    assert!(dot.contains("dashed: deletes, children first"), "{dot}");
    let m = mermaid(&g, &[]);
    assert!(m.contains("  r2 -.-> r1\n"), "{m}");
    assert!(m.contains(":::delete\n"), "{m}");
}

#[test]
fn a_replace_is_one_node_in_either_order() {
    // Create-first: the new subnet, an update that needs it, then the old deleted.
    let g = from_plan(&[
        row(
            1,
            "replace (create new)",
            "aws.subnet",
            "pending-subnet-9",
            Some("a"),
            &[],
        ),
        row(2, "update", "aws.instance", "i-1", Some("web"), &[1]),
        row(
            3,
            "replace (delete old)",
            "aws.subnet",
            "subnet-old",
            Some("a"),
            &[1],
        ),
    ]);
    assert_eq!(g.nodes.len(), 2, "{g:?}");
    assert_eq!(g.nodes[0].action, Action::Replace);
    assert_eq!(g.nodes[0].steps, vec![1, 3]);
    assert_eq!(g.nodes[0].resource_id.as_deref(), Some("subnet-old"));
    assert_eq!(g.nodes[1].action, Action::Update);
    assert_eq!(edges(&g), vec![(2, 1, EdgeKind::Needs)]);

    // Delete-first (a unique name): the old one goes after the unrelated VPC.
    let g = from_plan(&[
        row(1, "create", "aws.vpc", "pending-vpc-1", Some("other"), &[]),
        row(
            2,
            "replace (delete old first)",
            "aws.db_instance",
            "db",
            Some("db"),
            &[1],
        ),
        row(
            3,
            "replace (create new)",
            "aws.db_instance",
            "db",
            Some("db"),
            &[2],
        ),
    ]);
    assert_eq!(g.nodes.len(), 2, "{g:?}");
    assert_eq!(edges(&g), vec![(2, 1, EdgeKind::After)]);
    let dot = dot(&g, &[]);
    assert!(
        dot.contains("  r2 -> r1 [style=dotted, label=\"after\"];\n"),
        "{dot}"
    );
    assert!(
        dot.contains("fillcolor=\"#f8cbad\", color=\"#e65100\""),
        "{dot}"
    );
    let m = mermaid(&g, &[]);
    assert!(m.contains("  r2 -. after .-> r1\n"), "{m}");
    assert!(
        m.contains("  r2[\"replace aws.db_instance<br>db<br>db, us-east-1\"]:::replace\n"),
        "{m}"
    );
}

#[test]
fn an_empty_plan_draws_no_changes() {
    let g = from_plan(&[]);
    assert_eq!(
        dot(&g, &[]),
        format!(
            "{}  empty [label=\"no changes\", fillcolor=\"#e7e6e6\", color=\"#757575\"];\n}}\n",
            dot::HEADER
        )
    );
    assert_eq!(
        mermaid(&g, &[]),
        "flowchart RL\n  empty[\"no changes\"]:::noop\n  classDef noop fill:#e7e6e6,stroke:#757575,color:#000\n"
    );
}

#[test]
fn an_unknown_step_label_is_grey_not_dropped() {
    let g = from_plan(&[row(1, "import", "aws.vpc", "vpc-1", None, &[])]);
    assert_eq!(g.nodes[0].action, Action::Other);
    let m = mermaid(&g, &[]);
    assert!(
        m.contains("  r1[\"no-op aws.vpc<br>vpc-1, us-east-1\"]:::noop\n"),
        "{m}"
    );
    assert!(m.contains("classDef noop fill:#e7e6e6"), "{m}");
    assert!(dot(&g, &[]).contains("legend_no_op [label=\"no-op\""));
}

#[test]
fn the_same_plan_draws_the_same_text_in_any_row_order() {
    let mut rows = network();
    let (d, m) = (dot(&from_plan(&rows), &[]), mermaid(&from_plan(&rows), &[]));
    rows.reverse();
    rows.swap(0, 2);
    assert_eq!(dot(&from_plan(&rows), &[]), d);
    assert_eq!(mermaid(&from_plan(&rows), &[]), m);
}

const NASTY: &str = "a\"b]c;d\nx<b>&amp; \\N #quot; end` `` ```:#1 café ü";

#[test]
fn dot_labels_escape_quotes_backslashes_and_line_breaks() {
    let g = from_plan(&[row(
        1,
        "create",
        "aws.vpc",
        "pending-vpc-1",
        Some(NASTY),
        &[],
    )]);
    let dot = dot(&g, &["deny: a\nb".to_string()]);
    let line = dot.lines().find(|l| l.starts_with("  r1 [")).unwrap();
    assert_eq!(
        line,
        "  r1 [label=\"create aws.vpc\\na\\\"b]c;d\\nx<b>&amp; \\\\N #quot; end` `` ```:#1 café ü\\n(known after apply), us-east-1\", fillcolor=\"#c6efce\", color=\"#2e7d32\"];"
    );
    // A note's line break cannot end its comment early.
    assert!(dot.contains("  // deny: a b\n"), "{dot}");
}

#[test]
fn mermaid_labels_are_quoted_with_entities() {
    let g = from_plan(&[row(
        1,
        "create",
        "aws.vpc",
        "pending-vpc-1",
        Some(NASTY),
        &[],
    )]);
    let m = mermaid(&g, &["a ```b".to_string()]);
    let line = m.lines().find(|l| l.starts_with("  r1[")).unwrap();
    assert_eq!(
        line,
        "  r1[\"create aws.vpc<br>a#quot;b]c#59;d<br>x#60;b#62;#38;amp#59; \\N #35;quot#59; end#96; #96;#96; #96;#96;#96;#58;#35;1 café ü<br>(known after apply), us-east-1\"]:::create"
    );
    // Nothing can end the label, the statement or a Markdown code fence.
    let inner = &line["  r1[\"".len()..line.len() - "\"]:::create".len()];
    assert!(!inner.contains(['"', '`']), "{inner}");
    let mut rest = inner;
    while let Some(i) = rest.find(';') {
        let entity = &rest[..=i];
        let start = entity.rfind('#').expect("every ; ends an entity");
        let code = &entity[start + 1..i];
        assert!(code == "quot" || code.parse::<u32>().is_ok(), "{entity}");
        rest = &rest[i + 1..];
    }
    for l in m.lines() {
        assert!(!l.contains("```"), "{l}");
    }
    assert!(m.contains("  %% a '''b\n"), "{m}");
}

#[test]
fn mermaid_labels_cannot_hold_directives_or_direction_statements() {
    let name = "%%{init: {'theme': 'dark'}}%% direction LR";
    let g = from_plan(&[row(
        1,
        "create",
        "aws.vpc",
        "pending-vpc-1",
        Some(name),
        &[],
    )]);
    let m = mermaid(&g, &["%%%{init: {}}%%".to_string()]);
    let line = m.lines().find(|l| l.starts_with("  r1[")).unwrap();
    assert!(
        line.contains("<br>#37;#37;{init#58; {'theme'#58; 'dark'}}#37;#37; #100;irection LR<br>"),
        "{line}"
    );
    assert!(m.contains("  %% % % %{init: {}}% %\n"), "{m}");
    assert!(!m.contains("%%{") && !m.contains("direction"), "{m}");
}
