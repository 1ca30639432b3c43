//! The plan graph (`client::graph`) as an inline SVG, laid out here so no
//! script or stylesheet has to come from elsewhere: a node's column is the
//! length of the longest chain of steps it waits for, so everything a step
//! waits for stands to its left; within a column, nodes keep step order.
//! Arrows point as in the DOT and Mermaid renderings: from the step that
//! waits to the one it waits for.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::html::esc;
use crate::client::graph::{EdgeKind, Graph};

const WIDTH: i64 = 270;
const GAP_X: i64 = 70;
const GAP_Y: i64 = 24;
const LINE: i64 = 16;
const PAD: i64 = 8;

/// The SVG element, or a note when there is nothing to draw.
pub fn render(g: &Graph) -> String {
    if g.nodes.is_empty() {
        return "<p class=\"muted\">No steps to draw.</p>".into();
    }
    let column = columns(g);
    let mut y_next: HashMap<usize, i64> = HashMap::new();
    let mut place: HashMap<i64, (i64, i64, i64)> = HashMap::new();
    for n in &g.nodes {
        let col = column[&n.key];
        let h = n.label_lines().len() as i64 * LINE + 2 * PAD;
        let y = *y_next.get(&col).unwrap_or(&PAD);
        y_next.insert(col, y + h + GAP_Y);
        place.insert(n.key, (PAD + col as i64 * (WIDTH + GAP_X), y, h));
    }
    let width =
        PAD * 2 + (column.values().max().copied().unwrap_or(0) as i64 + 1) * (WIDTH + GAP_X);
    let height = y_next.values().max().copied().unwrap_or(0) + PAD;
    let mut out = format!(
        "<svg id=\"graph\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"Helvetica,Arial,sans-serif\" font-size=\"12\" role=\"img\" aria-label=\"plan graph\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" \
         markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M0,0L10,5L0,10z\" fill=\"#555\"/></marker></defs>"
    );
    for e in &g.edges {
        let (Some(a), Some(b)) = (place.get(&e.from), place.get(&e.to)) else {
            continue;
        };
        // From the waiting node's left side to the awaited node's right side.
        let (x1, y1) = (a.0, a.1 + a.2 / 2);
        let (x2, y2) = (b.0 + WIDTH, b.1 + b.2 / 2);
        let dash = match e.kind {
            EdgeKind::Needs => "",
            EdgeKind::Teardown => " stroke-dasharray=\"6 3\"",
            EdgeKind::After => " stroke-dasharray=\"2 3\"",
        };
        let _ = write!(
            out,
            "<line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" stroke=\"#555\"{dash} marker-end=\"url(#arrow)\"/>"
        );
    }
    for n in &g.nodes {
        let (x, y, h) = place[&n.key];
        let (fill, stroke) = n.action.colours();
        let _ = write!(
            out,
            "<g class=\"node\" data-action=\"{}\"><rect x=\"{x}\" y=\"{y}\" width=\"{WIDTH}\" height=\"{h}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\"/>",
            n.action.name()
        );
        for (i, line) in n.label_lines().iter().enumerate() {
            let ty = y + PAD + LINE * (i as i64 + 1) - 4;
            let _ = write!(
                out,
                "<text x=\"{}\" y=\"{ty}\">{}</text>",
                x + PAD,
                esc(&shorten(line))
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out
}

/// Each node's column: 0 when it waits for nothing, else one more than the
/// furthest node it waits for. The graph is acyclic (the apply's order);
/// a cycle would only stop deepening at the node count.
fn columns(g: &Graph) -> HashMap<i64, usize> {
    let mut col: HashMap<i64, usize> = g.nodes.iter().map(|n| (n.key, 0)).collect();
    for _ in 0..g.nodes.len() {
        let mut changed = false;
        for e in &g.edges {
            let want = col.get(&e.to).copied().unwrap_or(0) + 1;
            if let Some(c) = col.get_mut(&e.from) {
                if *c < want && want < g.nodes.len() {
                    *c = want;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    col
}

/// A label line that fits the box (about 7 px a character at 12 px).
fn shorten(s: &str) -> String {
    const MAX: usize = 37;
    if s.chars().count() <= MAX {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(MAX - 1).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::render::PlanRow;

    fn row(step: i64, action: &str, table: &str, id: &str, deps: &[i64]) -> PlanRow {
        PlanRow {
            step,
            action: action.into(),
            table: table.into(),
            resource_id: id.into(),
            name: None,
            region: "us-east-1".into(),
            changes: Default::default(),
            depends_on: deps.to_vec(),
        }
    }

    #[test]
    fn a_step_stands_right_of_what_it_waits_for_and_labels_are_escaped() {
        let g = crate::client::graph::from_plan(&[
            row(1, "create", "aws.vpc", "vpc-1", &[]),
            row(2, "create", "aws.subnet", "<subnet>", &[1]),
        ]);
        let cols = columns(&g);
        assert_eq!(cols[&1], 0);
        assert_eq!(cols[&2], 1);
        let svg = render(&g);
        assert!(svg.starts_with("<svg id=\"graph\""), "{svg}");
        assert_eq!(svg.matches("<g class=\"node\"").count(), 2);
        assert_eq!(svg.matches("<line ").count(), 1);
        assert!(svg.contains("&lt;subnet&gt;"), "{svg}");
        assert!(!svg.contains("<subnet>"));
    }
}
