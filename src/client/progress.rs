//! What `infrasql apply` shows while it runs. The engine reports an
//! apply's progress as NOTICEs during the COMMIT ("infrasql: applying ...",
//! "infrasql: step N: started ...", "... done ...", "infrasql: applied N
//! actions ..."); on a terminal they drive a progress bar, elsewhere (a CI
//! log) each becomes a plain line with an RFC 3339 UTC timestamp, so a log
//! says when every action started and ended.

use std::future::Future;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::error::DbError;

pub struct Progress {
    notices: UnboundedReceiver<DbError>,
    terminal: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// `terminal`: draw a bar (stdout is a terminal); else plain lines.
    pub fn new(notices: UnboundedReceiver<DbError>, terminal: bool) -> Self {
        Progress {
            notices,
            terminal,
            bar: None,
        }
    }

    /// One line of infrasql apply's own (a file applied, skipped, ...).
    pub fn line(&mut self, text: &str) {
        for (i, l) in text.lines().enumerate() {
            let l = if i == 0 {
                l.to_string()
            } else {
                format!("  {l}")
            };
            match (&self.bar, self.terminal) {
                (Some(bar), _) => bar.println(l),
                (None, true) => println!("{l}"),
                (None, false) => println!("{} {l}", timestamp()),
            }
        }
    }

    /// Awaits `fut` (a statement, the COMMIT) while showing the notices it
    /// raises as they come.
    pub async fn during<T>(&mut self, fut: impl Future<Output = T>) -> T {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                biased;
                r = &mut fut => {
                    // The connection hands notices over before the answer:
                    // the rest are waiting.
                    while let Ok(n) = self.notices.try_recv() {
                        self.notice(&n);
                    }
                    return r;
                }
                Some(n) = self.notices.recv() => self.notice(&n),
            }
        }
    }

    /// Ends a bar left over by an apply that failed half-way.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn notice(&mut self, n: &DbError) {
        let msg = n.message();
        if self.terminal {
            if let Some(total) = planned_steps(msg) {
                self.finish();
                // On stdout, where the lines go too: a bar on stderr would
                // interleave with them out of order.
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stdout());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
                        .expect("a valid template")
                        .progress_chars("=> "),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                self.bar = Some(bar);
            }
        }
        let mut text = msg.to_string();
        if let Some(d) = n.detail() {
            text.push_str(&format!("\nDETAIL: {d}"));
        }
        if let Some(h) = n.hint() {
            text.push_str(&format!("\nHINT: {h}"));
        }
        self.line(&text);
        if let Some(bar) = &self.bar {
            if step_ended(msg) {
                bar.inc(1);
            }
            bar.set_message(msg.lines().next().unwrap_or_default().to_string());
        }
        if msg.starts_with("infrasql: applied ") {
            self.finish();
        }
    }
}

fn timestamp() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The number of steps of "infrasql: applying 1 to create, 2 to update, 1
/// to replace, 0 to delete (apply-...)": a replace is two steps.
fn planned_steps(msg: &str) -> Option<u64> {
    let rest = msg.strip_prefix("infrasql: applying ")?;
    let summary = rest.split(" (").next()?;
    let mut total = 0;
    for part in summary.split(", ") {
        let (n, what) = part.split_once(' ')?;
        let n: u64 = n.parse().ok()?;
        total += if what == "to replace" { 2 * n } else { n };
    }
    Some(total)
}

/// "infrasql: step 3: done ..." or "... failed ...": one step less to go.
fn step_ended(msg: &str) -> bool {
    msg.strip_prefix("infrasql: step ")
        .and_then(|r| r.split_once(": "))
        .is_some_and(|(_, what)| what.starts_with("done") || what.starts_with("failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apply_notice_gives_the_number_of_steps() {
        assert_eq!(
            planned_steps(
                "infrasql: applying 1 to create, 2 to update, 1 to replace, 0 to delete (apply-0123456789abcdef)"
            ),
            Some(5)
        );
        assert_eq!(planned_steps("infrasql: applied 3 actions in 5 ms"), None);
    }

    #[test]
    fn done_and_failed_end_a_step() {
        assert!(step_ended("infrasql: step 2: done as vpc-1 in 30 ms"));
        assert!(step_ended("infrasql: step 2: failed after 3 ms: boom"));
        assert!(!step_ended(
            "infrasql: step 2: started create aws.vpc \"a\""
        ));
        assert!(!step_ended("infrasql: undo step 2: restored"));
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = timestamp();
        assert!(chrono::DateTime::parse_from_rfc3339(&t).is_ok(), "{t}");
        assert!(t.ends_with('Z'), "{t}");
    }
}
