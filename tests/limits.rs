//! Limits a client cannot talk the server past: `--max-connections`, and
//! memory (a huge message is refused by its header; a client that stops
//! reading stops the backend instead of filling infrasql's memory).

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{sqlstate, TestServer};

/// What the memory tests allow infrasql to grow by, over its resident size
/// before the test.
const RSS_BOUND_KB: u64 = 150 * 1024;

/// A field of /proc/<pid>/status in kB (`VmRSS`, `VmHWM`: the peak).
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The first ErrorResponse's code and message in `bytes`.
fn error_in(bytes: &[u8]) -> Option<(String, String)> {
    let mut i = 0;
    while i + 5 <= bytes.len() {
        let len = i32::from_be_bytes(bytes[i + 1..i + 5].try_into().unwrap()) as usize;
        let end = (i + 1 + len).min(bytes.len());
        if bytes[i] == b'E' {
            let (mut code, mut msg) = (String::new(), String::new());
            for field in bytes[i + 5..end].split(|b| *b == 0) {
                if let Some((&k, v)) = field.split_first() {
                    let v = String::from_utf8_lossy(v).into_owned();
                    match k {
                        b'C' => code = v,
                        b'M' => msg = v,
                        _ => {}
                    }
                }
            }
            return Some((code, msg));
        }
        i = end;
    }
    None
}

async fn still_serving(s: &TestServer) {
    let c = s.connect().await;
    assert_eq!(common::one::<i32>(&c, "select 7").await, 7);
}

#[tokio::test]
async fn the_client_past_max_connections_is_refused_with_53300_and_the_others_keep_working() {
    let s = TestServer::start_with(&["--max-connections", "2"]);
    let a = s.connect().await;
    let b = s.connect().await;
    let e = common::connect(&s.conn_string())
        .await
        .expect_err("a third client is refused");
    assert_eq!(sqlstate(&e).as_deref(), Some("53300"), "{e}");
    let msg = e.as_db_error().unwrap().message().to_owned();
    assert!(
        msg.contains("too many clients") && msg.contains("infrasql allows 2"),
        "{msg}"
    );
    // Those already in keep working.
    assert_eq!(common::one::<i32>(&a, "select 1").await, 1);
    assert_eq!(common::one::<i32>(&b, "select 2").await, 2);
    // Once one leaves, a new client gets its place (the slot is freed when
    // the server has seen the session end).
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    let c = loop {
        match common::connect(&s.conn_string()).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(sqlstate(&e).as_deref(), Some("53300"), "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no place freed after a client left: {e}"),
        }
    };
    assert_eq!(common::one::<i32>(&c, "select 3").await, 3);
}

#[test]
fn zero_max_connections_refuses_to_start() {
    let tmp = common::temp_dir();
    let e = TestServer::start_in(&tmp.path().join("data"), &["--max-connections", "0"])
        .err()
        .expect("--max-connections 0 must not start");
    assert!(e.contains("--max-connections must be at least 1"), "{e}");
}

#[tokio::test]
async fn a_streamed_1_gib_query_is_refused_by_its_header_with_54000_and_memory_stays_bounded() {
    let s = TestServer::start_with(&["--auth", "trust"]);
    let pid = s.pid();
    let bystander = s.connect().await;
    let base = status_kb(pid, "VmRSS");

    // A Query of 1 GiB, sent as the client would stream it: the header,
    // then 1 MiB writes, while a reader waits for the server's answer.
    let mut t = s.logged_in(Duration::from_secs(20));
    let mut reader = t.try_clone().unwrap();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = answered.clone();
    let answer = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        got
    });
    let total: usize = 1 << 30;
    let mut header = vec![b'Q'];
    header.extend_from_slice(&((total - 1) as i32).to_be_bytes());
    t.write_all(&header).unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0;
    // The server refuses and closes: the client stops once it has read
    // that (or its writes fail).
    while sent < total
        && !answered.load(std::sync::atomic::Ordering::Acquire)
        && t.write_all(&chunk).is_ok()
    {
        sent += chunk.len();
    }
    let answer = answer.join().unwrap();
    let (code, msg) = error_in(&answer).expect("an ErrorResponse before the close");
    assert_eq!(code, "54000", "{msg}");
    assert!(msg.contains("too large"), "{msg}");
    assert!(
        sent < total,
        "the server read the whole 1 GiB instead of refusing it"
    );
    let peak = status_kb(pid, "VmHWM");
    eprintln!("1 GiB query refused after {sent} bytes sent: RSS {base} kB before, peak {peak} kB");
    assert!(
        peak < base + RSS_BOUND_KB,
        "peak RSS {peak} kB, {base} kB before"
    );

    // A large query under the limit still runs, held once.
    let big = "y".repeat(40 << 20);
    let n: i32 = common::one(&bystander, &format!("select length('{big}')")).await;
    assert_eq!(n, 40 << 20);
    let peak = status_kb(pid, "VmHWM");
    eprintln!("40 MiB query: peak RSS {peak} kB");
    assert!(
        peak < base + RSS_BOUND_KB,
        "peak RSS {peak} kB after a 40 MiB query, {base} kB before"
    );
    still_serving(&s).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_stops_its_backend_instead_of_growing_memory() {
    let s = TestServer::start_with(&["--auth", "trust"]);
    let pid = s.pid();
    let base = status_kb(pid, "VmRSS");
    // About 5 GB of results, never read.
    let mut t = s.logged_in(Duration::from_secs(20));
    let sql = "select repeat('x', 1000) from generate_series(1, 5000000)\0";
    let mut q = vec![b'Q'];
    q.extend_from_slice(&((4 + sql.len()) as i32).to_be_bytes());
    q.extend_from_slice(sql.as_bytes());
    t.write_all(&q).unwrap();

    // The backend waits to write to infrasql, which waits for the client:
    // seen from pg_stat_activity as ClientWrite, held over a second.
    let engine = s.connect_engine().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut steady = 0;
    while steady < 10 {
        assert!(
            Instant::now() < deadline,
            "the backend never stopped on a full client"
        );
        let waiting: i64 = common::one(
            &engine,
            "select count(*) from pg_stat_activity \
             where query like 'select repeat%' and wait_event = 'ClientWrite'",
        )
        .await;
        steady = if waiting == 1 { steady + 1 } else { 0 };
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let peak = status_kb(pid, "VmHWM");
    eprintln!("unread 5 GB result: RSS {base} kB before, peak {peak} kB");
    assert!(
        peak < base + RSS_BOUND_KB,
        "peak RSS {peak} kB with an unread result, {base} kB before"
    );
    // Other sessions are not held up by it.
    still_serving(&s).await;
    drop(t);
}
