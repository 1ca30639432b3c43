//! Graphviz DOT (`dot -Tsvg plan.dot > plan.svg`).
//!
//! Labels are DOT quoted strings, never HTML-like labels (`<...>`), so
//! `<`, `>` and `&` in a name are plain text and only `\` and `"` need
//! escaping; a line break is DOT's centred `\n`.

use std::fmt::Write;

use super::{comment_text, EdgeKind, Graph};

pub(super) const HEADER: &str = "digraph plan {\n  rankdir=RL;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n";

/// The graph as DOT; `notes` become `//` comments (the policies' verdicts).
pub fn dot(g: &Graph, notes: &[String]) -> String {
    let mut s = String::from(HEADER);
    for n in notes {
        let _ = writeln!(s, "  // {}", comment_text(n));
    }
    if g.nodes.is_empty() {
        s.push_str(
            "  empty [label=\"no changes\", fillcolor=\"#e7e6e6\", color=\"#757575\"];\n}\n",
        );
        return s;
    }
    for n in &g.nodes {
        let (fill, border) = n.action.colours();
        let _ = writeln!(
            s,
            "  {} [label=\"{}\", fillcolor=\"{fill}\", color=\"{border}\"];",
            n.id(),
            label(&n.label_lines())
        );
    }
    for e in &g.edges {
        let _ = writeln!(s, "  r{} -> r{}{};", e.from, e.to, edge_attrs(e.kind));
    }
    legend(g, &mut s);
    s.push_str("}\n");
    s
}

fn edge_attrs(kind: EdgeKind) -> &'static str {
    match kind {
        EdgeKind::Needs => "",
        EdgeKind::Teardown => " [style=dashed]",
        EdgeKind::After => " [style=dotted, label=\"after\"]",
    }
}

/// One box per action present, and what the arrows mean.
fn legend(g: &Graph, s: &mut String) {
    s.push_str("  subgraph cluster_legend {\n    label=\"legend\";\n    fontname=\"Helvetica\";\n");
    for a in g.actions() {
        let (fill, border) = a.colours();
        let _ = writeln!(
            s,
            "    legend_{} [label=\"{}\", fillcolor=\"{fill}\", color=\"{border}\"];",
            a.name().replace('-', "_"),
            a.name()
        );
    }
    let mut meaning = vec!["A -> B: A's step waits for B's".to_string()];
    for k in g.edge_kinds() {
        match k {
            EdgeKind::Needs => {}
            EdgeKind::Teardown => meaning.push("dashed: deletes, children first".into()),
            EdgeKind::After => {
                meaning.push("dotted: a delete-first replace waits for the other steps".into())
            }
        }
    }
    let _ = writeln!(
        s,
        "    legend_edges [shape=plaintext, style=\"\", label=\"{}\"];\n  }}",
        label(&meaning)
    );
}

/// The lines as the inside of a DOT quoted string.
pub(super) fn label(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| escape(l))
        .collect::<Vec<_>>()
        .join("\\n")
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            // `\` starts DOT's label escapes (`\N`, `\l`, ...): doubled, it is itself.
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
