//! Mermaid flowchart: GitHub and GitLab draw a ```` ```mermaid ```` block
//! in a pull request's comment.
//!
//! Every label is a quoted string (`r1["..."]`), so brackets, `end` and
//! other words of the flowchart grammar are text. Inside it, the
//! characters Mermaid or the HTML it renders to would read are written as
//! Mermaid's entities (`#quot;`, `#35;`, ...): `"` would end the string,
//! `<`/`>`/`&` would be markup, `#` would start an entity, `` ` `` a
//! Markdown string or the end of the code fence around the block, `;`
//! ends a statement, `:` with `#` makes Mermaid cut a line it takes for a
//! style, and `%%{` anywhere is read as a directive (the notes' `%%` is
//! broken up for the same reason). A line break is `<br>`. The flowchart
//! lexer takes any line holding `direction LR` (or TB, ...) for a direction
//! statement, even inside a string, so that word's `d` is an entity too.

use std::fmt::Write;

use super::{comment_text, EdgeKind, Graph};

/// The graph as a Mermaid flowchart; `notes` become `%%` comments.
pub fn mermaid(g: &Graph, notes: &[String]) -> String {
    // Right to left: a step's arrow points at what it waits for, so what
    // runs first is drawn on the left.
    let mut s = String::from("flowchart RL\n");
    for n in notes {
        // A backtick run could end the code fence around the block.
        let mut text = comment_text(n).replace('`', "'");
        while text.contains("%%") {
            text = text.replace("%%", "% %");
        }
        let _ = writeln!(s, "  %% {text}");
    }
    if g.nodes.is_empty() {
        s.push_str("  empty[\"no changes\"]:::noop\n");
        class_def(&mut s, "noop", super::Action::Other.colours());
        return s;
    }
    for n in &g.nodes {
        let _ = writeln!(
            s,
            "  {}[\"{}\"]:::{}",
            n.id(),
            label(&n.label_lines()),
            class(n.action)
        );
    }
    for e in &g.edges {
        let arrow = match e.kind {
            EdgeKind::Needs => "-->",
            EdgeKind::Teardown => "-.->",
            EdgeKind::After => "-. after .->",
        };
        let _ = writeln!(s, "  r{} {arrow} r{}", e.from, e.to);
    }
    s.push_str("  subgraph legend [legend]\n");
    for a in g.actions() {
        let _ = writeln!(
            s,
            "    legend_{}[\"{}\"]:::{}",
            class(a),
            a.name(),
            class(a)
        );
    }
    let mut meaning = vec!["A → B: A's step waits for B's".to_string()];
    for k in g.edge_kinds() {
        match k {
            EdgeKind::Needs => {}
            EdgeKind::Teardown => meaning.push("dotted: deletes, children first".into()),
            EdgeKind::After => {
                meaning.push("after: a delete-first replace waits for the other steps".into())
            }
        }
    }
    let _ = writeln!(s, "    legend_edges[\"{}\"]\n  end", label(&meaning));
    for a in g.actions() {
        class_def(&mut s, class(a), a.colours());
    }
    s
}

/// A class name Mermaid accepts (`no-op` is not one).
fn class(a: super::Action) -> &'static str {
    match a {
        super::Action::Other => "noop",
        a => a.name(),
    }
}

fn class_def(s: &mut String, class: &str, (fill, border): (&str, &str)) {
    let _ = writeln!(
        s,
        "  classDef {class} fill:{fill},stroke:{border},color:#000"
    );
}

/// The lines as the inside of a quoted Mermaid label.
pub(super) fn label(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| escape(l))
        .collect::<Vec<_>>()
        .join("<br>")
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' | '&' | '<' | '>' | ';' | ':' | '`' | '%' => {
                let _ = write!(out, "#{};", c as u32);
            }
            '\n' => out.push_str("<br>"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.replace("direction", "#100;irection")
}
