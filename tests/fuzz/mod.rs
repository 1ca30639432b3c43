//! A small property-test runner for the wire fuzzer. (proptest would turn
//! on `num-traits/std`, which the AWS SDK crates share, and rebuild them.)
//!
//! Each target is a generator and a function over bytes. Cases run under
//! `catch_unwind`; a panicking input is shrunk (chunks cut while it still
//! panics) and written under `$CARGO_TARGET_TMPDIR/fuzz-failures/<target>/`
//! for the regression corpus (`tests/fuzz_corpus/<target>/`). A watchdog
//! fails the run if one case takes longer than [`HANG`]: an endless loop
//! is a bug too.
#![allow(dead_code)]

pub mod gen;
pub mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

/// One case may take this long before the run counts it as a hang.
pub const HANG: Duration = Duration::from_secs(10);

pub struct Target {
    pub name: &'static str,
    pub generate: fn(&mut StdRng) -> Vec<u8>,
    pub run: fn(&[u8]),
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "startup",
        generate: gen::startup,
        run: targets::startup,
    },
    Target {
        name: "frame",
        generate: gen::frames,
        run: targets::frames,
    },
    Target {
        name: "classify",
        generate: gen::sql_bytes,
        run: targets::classify_text,
    },
];

/// A fifth of the cases are plain random bytes, the rest structured.
fn input(t: &Target, rng: &mut StdRng) -> Vec<u8> {
    use rand::Rng;
    if rng.random_bool(0.2) {
        gen::bytes(rng, 300)
    } else {
        (t.generate)(rng)
    }
}

pub struct Outcome {
    pub cases: u64,
    /// Shrunk panicking inputs, written to disk, and the first panic's message.
    pub failures: Vec<(PathBuf, String)>,
}

/// How long and how many: `FUZZ_SECONDS` (a time box) wins over
/// `FUZZ_CASES`/`PROPTEST_CASES` (a count); `FUZZ_SEED` replays a run.
pub struct Budget {
    pub cases: u64,
    pub time: Option<Duration>,
    pub seed: u64,
}

impl Budget {
    pub fn from_env(default_cases: u64) -> Budget {
        let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        Budget {
            cases: var("FUZZ_CASES")
                .or_else(|| var("PROPTEST_CASES"))
                .unwrap_or(default_cases),
            time: var("FUZZ_SECONDS").map(Duration::from_secs),
            seed: var("FUZZ_SEED").unwrap_or(0x1f5e_c0de),
        }
    }
}

/// Whether `run(data)` panics; the message goes nowhere (the hook is quiet
/// while the fuzzer runs).
fn panics(run: fn(&[u8]), data: &[u8]) -> bool {
    catch_unwind(AssertUnwindSafe(|| run(data))).is_err()
}

/// Cut chunks out while the input still panics.
fn shrink(run: fn(&[u8]), mut data: Vec<u8>) -> Vec<u8> {
    let mut chunk = data.len() / 2;
    let mut tries = 0;
    while chunk > 0 && tries < 4000 {
        let mut at = 0;
        while at + chunk <= data.len() && tries < 4000 {
            tries += 1;
            let mut smaller = data.clone();
            smaller.drain(at..at + chunk);
            if panics(run, &smaller) {
                data = smaller;
            } else {
                at += chunk;
            }
        }
        chunk /= 2;
    }
    data
}

fn save(dir: &Path, data: &[u8]) -> PathBuf {
    // FNV-1a: a stable name, so the same input is saved once.
    let h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(format!("{h:016x}"));
    std::fs::write(&p, data).unwrap();
    p
}

/// Run one target for its budget on a worker thread, watched for hangs.
pub fn fuzz(t: &'static Target, budget: &Budget) -> Outcome {
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz-failures")
        .join(t.name);
    let current = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicU64::new(0));
    let (cases, time, seed) = (budget.cases, budget.time, budget.seed);
    let worker = {
        let (current, done, out_dir) = (current.clone(), done.clone(), out_dir.clone());
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(seed ^ t.name.len() as u64);
            let start = Instant::now();
            let mut failures = Vec::new();
            let mut n = 0u64;
            while time.map_or(n < cases, |d| start.elapsed() < d) {
                let data = input(t, &mut rng);
                *current.lock().unwrap() = data.clone();
                if panics(t.run, &data) {
                    let message = LAST_PANIC.lock().unwrap().take().unwrap_or_default();
                    failures.push((save(&out_dir, &shrink(t.run, data)), message));
                }
                n += 1;
                done.store(n, Ordering::Release);
            }
            Outcome { cases: n, failures }
        })
    };
    let (mut seen, mut since) = (0, Instant::now());
    while !worker.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
        let now = done.load(Ordering::Acquire);
        if now != seen {
            (seen, since) = (now, Instant::now());
        } else if since.elapsed() > HANG {
            let data = current.lock().unwrap().clone();
            let p = save(&out_dir.join("hang"), &data);
            // The default hook again, so this panic is printed.
            drop(std::panic::take_hook());
            panic!(
                "{}: case {now} runs past {HANG:?}; input saved to {}",
                t.name,
                p.display()
            );
        }
    }
    worker.join().expect("fuzz worker")
}

/// Every file of `tests/fuzz_corpus/<target>/`, sorted.
pub fn corpus(t: &Target) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_corpus")
        .join(t.name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Keep panic messages instead of printing them while fuzzing (a panic is
/// counted, shrunk and saved; shrinking alone would print thousands).
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.to_string());
    }));
}
