//! One AuthorizeSecurityGroupIngress/Egress call for the rules one apply
//! creates on one group in one direction (issue #15: an apply's time is the
//! calls it makes).
//!
//! The engine starts every ready step at once, and each rule is still its
//! own step: its own journal row, its own undo, its own recovery. So the
//! batching happens here, under the steps: the first rule to arrive for a
//! (apply, region, group, direction, tags) key leads, waits until no other
//! rule has joined for [`QUIET`] (at most [`WINDOW`], at most [`CAP`]
//! rules), then sends one call; every rule gets its own rule id from the
//! answer, matched by shape. A rule waiting in a batch holds no concurrency
//! permit: only the leader takes one, for the call.
//!
//! AWS refuses a call as a whole: if a batch is refused, every rule is sent
//! again alone, so each gets its own answer and a bad rule's error names
//! that rule. A batch whose outcome is unknown (its answer lost, and no
//! lookup found the rules) fails each rule as `Retryable`, leaving the
//! apply to recovery, which finds the rules by the apply-id tag.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::SecurityGroupRule as AwsRule;
use infrasql_provider::{ErrorClass, Props, ProviderError};
use tokio::sync::oneshot;

/// A batch closes when no rule joined for this long... (The rules of one
/// wave arrive as their journal rows are written, pipelined on one
/// connection: well under a millisecond apart, unless the machine is busy
/// and a process waits out a scheduler slice of a few milliseconds. A
/// split batch is only one more call, but the quiet time costs each batch
/// little next to an AWS call.)
const QUIET: Duration = Duration::from_millis(10);
/// ...or this long after it opened...
const WINDOW: Duration = Duration::from_millis(60);
/// ...or with this many rules (AWS's default limit of rules per group and
/// direction is 60).
const CAP: usize = 50;

/// Which rules may share a call: one apply, region, group and direction,
/// and the same tags (a call's TagSpecifications apply to all its rules).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub apply_id: String,
    pub region: String,
    pub group_id: String,
    pub egress: bool,
    pub tags: String,
}

/// What a rule in a batch gets back.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The batch's call made it: its rule as AWS answered.
    Made(Box<AwsRule>),
    /// Send it alone (the batch was refused, or never sent).
    Alone,
    Failed(ProviderError),
}

pub(super) struct Member {
    pub desired: Props,
    reply: Option<oneshot::Sender<Outcome>>,
}

impl Member {
    pub fn answer(&mut self, o: Outcome) {
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(o);
        }
    }
}

/// The batches still taking rules, one per key, and those that filled up
/// before their leader closed them; each by its number.
#[derive(Default)]
struct Batches {
    open: HashMap<Key, (u64, Vec<Member>)>,
    full: HashMap<u64, Vec<Member>>,
    next: u64,
}

#[derive(Default)]
pub(super) struct Batcher {
    batches: Mutex<Batches>,
}

/// A caller's place: lead the batch, or wait for the leader's answer.
pub(super) enum Place<'a> {
    Lead(Leader<'a>),
    Wait(oneshot::Receiver<Outcome>),
}

impl Batcher {
    fn batches(&self) -> std::sync::MutexGuard<'_, Batches> {
        self.batches.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn join(&self, key: Key, desired: &Props) -> Place<'_> {
        let mut b = self.batches();
        if let Some((number, members)) = b.open.get_mut(&key) {
            let (tx, rx) = oneshot::channel();
            members.push(Member {
                desired: desired.clone(),
                reply: Some(tx),
            });
            // Full (with its leader): it takes no more; its leader sends it.
            if members.len() + 1 >= CAP {
                let number = *number;
                let members = std::mem::take(members);
                b.open.remove(&key);
                b.full.insert(number, members);
            }
            return Place::Wait(rx);
        }
        b.next += 1;
        let number = b.next;
        b.open.insert(key.clone(), (number, Vec::new()));
        Place::Lead(Leader {
            batcher: self,
            key,
            number,
            closed: false,
        })
    }
}

/// The first rule of a batch. Dropped before it closed the batch (its step
/// was abandoned), it tells the others to go alone.
pub(super) struct Leader<'a> {
    batcher: &'a Batcher,
    key: Key,
    number: u64,
    closed: bool,
}

impl Leader<'_> {
    /// How many joined; `None` once the batch is full.
    fn joined(&self) -> Option<usize> {
        match self.batcher.batches().open.get(&self.key) {
            Some((n, members)) if *n == self.number => Some(members.len()),
            _ => None,
        }
    }

    /// Take the batch's rules out: it takes no more.
    fn take(&mut self) -> Vec<Member> {
        self.closed = true;
        let mut b = self.batcher.batches();
        if let Some(members) = b.full.remove(&self.number) {
            return members;
        }
        match b.open.get(&self.key) {
            Some((n, _)) if *n == self.number => b.open.remove(&self.key).unwrap_or_default().1,
            _ => Vec::new(),
        }
    }

    /// Wait for the rules of the same burst, then close the batch: the
    /// rules that joined (the leader's own is not among them).
    pub async fn close(mut self) -> Vec<Member> {
        let started = Instant::now();
        let mut seen = 0;
        loop {
            tokio::time::sleep(QUIET).await;
            match self.joined() {
                Some(n) if n != seen && started.elapsed() < WINDOW => seen = n,
                _ => break,
            }
        }
        self.take()
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if !self.closed {
            for mut m in self.take() {
                m.answer(Outcome::Alone);
            }
        }
    }
}

/// A waiting rule's answer; a leader that vanished after it sent the call
/// leaves the outcome unknown.
pub(super) fn received(r: Result<Outcome, oneshot::error::RecvError>) -> Outcome {
    r.unwrap_or_else(|_| {
        Outcome::Failed(ProviderError::new(
            ErrorClass::Retryable,
            "RequestAbandoned",
            "the call that was to create this rule (with others of its group) was abandoned; \
             whether AWS carried it out is unknown",
        ))
    })
}

/// Pair each rule asked for with a rule of the answer: first by shape
/// (`same`), then, where the answer has one rule per rule asked, any left
/// over (AWS spelt a value differently) in order among the rules left.
/// `None` where the answer lacks a rule.
pub(super) fn pair(
    asked: &[&Props],
    answer: Vec<AwsRule>,
    same: impl Fn(&AwsRule, &Props) -> bool,
) -> Vec<Option<AwsRule>> {
    let whole = answer.len() == asked.len();
    let mut left: Vec<Option<AwsRule>> = answer.into_iter().map(Some).collect();
    let mut out: Vec<Option<AwsRule>> = asked
        .iter()
        .map(|d| {
            let i = left
                .iter()
                .position(|r| r.as_ref().is_some_and(|r| same(r, d)))?;
            left[i].take()
        })
        .collect();
    if whole {
        let mut rest = left.into_iter().flatten();
        for slot in out.iter_mut().filter(|s| s.is_none()) {
            *slot = rest.next();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> Key {
        Key {
            apply_id: "a".into(),
            region: "r".into(),
            group_id: "sg-1".into(),
            egress: false,
            tags: String::new(),
        }
    }

    fn row(port: i64) -> Props {
        json!({ "from_port": port }).as_object().unwrap().clone()
    }

    #[tokio::test]
    async fn rules_of_one_burst_join_one_batch_and_a_new_key_leads_its_own() {
        let b = Batcher::default();
        let Place::Lead(leader) = b.join(key(), &row(1)) else {
            panic!("the first rule leads")
        };
        let waits: Vec<_> = (2..5).map(|p| b.join(key(), &row(p))).collect();
        assert!(waits.iter().all(|p| matches!(p, Place::Wait(_))));
        let other = Key {
            egress: true,
            ..key()
        };
        assert!(matches!(b.join(other, &row(9)), Place::Lead(_)));
        let members = leader.close().await;
        let ports: Vec<_> = members
            .iter()
            .map(|m| m.desired["from_port"].clone())
            .collect();
        assert_eq!(ports, [json!(2), json!(3), json!(4)]);
        // Closed: the next rule of the key leads a new batch.
        assert!(matches!(b.join(key(), &row(5)), Place::Lead(_)));
    }

    #[tokio::test]
    async fn an_abandoned_leader_sends_the_others_alone() {
        let b = Batcher::default();
        let leader = b.join(key(), &row(1));
        let Place::Wait(rx) = b.join(key(), &row(2)) else {
            panic!("joins")
        };
        drop(leader);
        assert!(matches!(received(rx.await), Outcome::Alone));
    }

    #[tokio::test]
    async fn a_full_batch_takes_no_more_and_the_next_rule_leads() {
        let b = Batcher::default();
        let Place::Lead(first) = b.join(key(), &row(0)) else {
            panic!("leads")
        };
        let _waits: Vec<_> = (1..CAP as i64).map(|p| b.join(key(), &row(p))).collect();
        let Place::Lead(second) = b.join(key(), &row(99)) else {
            panic!("a full batch takes no more")
        };
        let _w = b.join(key(), &row(100));
        assert_eq!(first.close().await.len(), CAP - 1);
        assert_eq!(second.close().await.len(), 1);
    }

    #[test]
    fn answers_pair_by_shape_then_in_order() {
        let asked = [row(1), row(2), row(3)];
        let asked: Vec<&Props> = asked.iter().collect();
        let answer = vec![
            AwsRule::builder().from_port(3).build(),
            AwsRule::builder().from_port(7).build(),
            AwsRule::builder().from_port(1).build(),
        ];
        let same = |r: &AwsRule, d: &Props| r.from_port().map(i64::from) == d["from_port"].as_i64();
        let got: Vec<_> = pair(&asked, answer, same)
            .into_iter()
            .map(|r| r.and_then(|r| r.from_port()))
            .collect();
        assert_eq!(got, [Some(1), Some(7), Some(3)]);
        // An answer with fewer rules (moto's to a call of several): only
        // those of the same shape.
        let short = vec![AwsRule::builder().from_port(3).build()];
        let got: Vec<_> = pair(&asked, short, same)
            .into_iter()
            .map(|r| r.and_then(|r| r.from_port()))
            .collect();
        assert_eq!(got, [None, None, Some(3)]);
    }
}
