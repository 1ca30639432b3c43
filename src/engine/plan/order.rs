//! The order of a plan's steps: its graph's nodes, a stable topological
//! sort, and which first-phase steps a delete-first replace must wait for.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::draft::Draft;
use super::Action;

/// A first-phase node: a draft, or the delete half of a delete-first replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Node {
    Main(usize),
    DeleteHalf(usize),
}

/// First-phase nodes that neither are part of a delete-first replace nor
/// need (transitively) the resource one creates.
pub(super) fn independent_of_recreates(
    first: &[Node],
    deps: &BTreeMap<Node, Vec<Node>>,
    drafts: &[Draft],
) -> Vec<Node> {
    let mut memo: HashMap<Node, bool> = HashMap::new();
    fn needs(
        n: Node,
        deps: &BTreeMap<Node, Vec<Node>>,
        drafts: &[Draft],
        memo: &mut HashMap<Node, bool>,
        seen: &mut HashSet<Node>,
    ) -> bool {
        if let Some(&v) = memo.get(&n) {
            return v;
        }
        let v = match n {
            Node::DeleteHalf(_) => true,
            Node::Main(i) if drafts[i].action == Action::RecreateCreate => true,
            // A cycle is reported by the topological sort; here it only
            // must not recurse forever.
            _ if !seen.insert(n) => false,
            _ => deps
                .get(&n)
                .is_some_and(|d| d.iter().any(|&m| needs(m, deps, drafts, memo, seen))),
        };
        memo.insert(n, v);
        v
    }
    first
        .iter()
        .copied()
        .filter(|&n| !needs(n, deps, drafts, &mut memo, &mut HashSet::new()))
        .collect()
}

/// Kahn's algorithm by levels, stable in input order. `Err` names a node on a cycle.
pub(super) fn topo<N: Copy + Ord + std::hash::Hash>(
    nodes: &[N],
    deps: &BTreeMap<N, Vec<N>>,
) -> Result<Vec<N>, N> {
    let mut done: Vec<N> = Vec::with_capacity(nodes.len());
    let mut placed = HashSet::new();
    while done.len() < nodes.len() {
        let before = done.len();
        // Level by level: a node joins once its dependencies were placed in
        // an earlier level, so each level keeps the input order.
        let level: Vec<N> = nodes
            .iter()
            .copied()
            .filter(|n| !placed.contains(n) && deps[n].iter().all(|d| placed.contains(d)))
            .collect();
        for n in level {
            placed.insert(n);
            done.push(n);
        }
        if done.len() == before {
            return Err(*nodes
                .iter()
                .find(|n| !placed.contains(n))
                .expect("some node unplaced"));
        }
    }
    Ok(done)
}
