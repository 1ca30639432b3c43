//! Unit tests of the serve configuration: flags, file, environment, defaults.

use super::*;

#[test]
fn flags_beat_the_file_and_the_file_beats_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:7000\"\nuser = \"bob\"\npg-options = [\"fsync=off\"]\n",
    )
    .unwrap();
    let args = ServeArgs {
        config: Some(path),
        user: Some("alice".into()),
        ..Default::default()
    };
    let c = args.resolve().unwrap();
    assert_eq!(c.listen.port(), 7000);
    assert_eq!(c.user, "alice");
    assert_eq!(c.pg_options, vec![("fsync".into(), "off".into())]);
    assert_eq!(c.auth, AuthMode::Scram);
}

#[test]
fn history_retention_takes_days_hours_minutes_or_off_and_refuses_the_rest() {
    let days = |n: u64| Some(Some(Duration::from_secs(n * 86_400)));
    assert_eq!(parse_retention("90d"), days(90));
    assert_eq!(
        parse_retention("12h"),
        Some(Some(Duration::from_secs(43_200)))
    );
    assert_eq!(
        parse_retention("30m"),
        Some(Some(Duration::from_secs(1_800)))
    );
    assert_eq!(parse_retention("off"), Some(None));
    assert_eq!(parse_retention("0"), Some(None));
    for bad in ["", "90", "0d", "-1d", "90 parsecs", "1.5d", "d"] {
        assert_eq!(parse_retention(bad), None, "{bad:?}");
    }
    let default = ServeArgs::default().resolve().unwrap();
    assert_eq!(
        default.history_retention,
        Some(Duration::from_secs(90 * 86_400))
    );
    let e = ServeArgs {
        history_retention: Some("soon".into()),
        ..Default::default()
    }
    .resolve()
    .unwrap_err()
    .to_string();
    assert!(e.contains("--history-retention \"soon\""), "{e}");
}

#[test]
fn aws_timeouts_default_to_aws_sized_limits_and_a_bad_value_refuses_to_start() {
    let default = ServeArgs::default().resolve().unwrap();
    assert_eq!(default.aws_timeouts, infrasql_aws::AwsTimeouts::default());
    let short = ServeArgs {
        aws_timeouts: Some("attempt=2s,operation=10s".into()),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    assert_eq!(short.aws_timeouts.attempt, Duration::from_secs(2));
    let e = ServeArgs {
        aws_timeouts: Some("attempt=forever".into()),
        ..Default::default()
    }
    .resolve()
    .unwrap_err()
    .to_string();
    assert!(e.contains("--aws-timeouts \"attempt=forever\""), "{e}");
}

#[test]
fn the_aws_limiter_is_adaptive_by_default_and_a_bad_value_refuses_to_start() {
    let default = ServeArgs::default().resolve().unwrap();
    assert_eq!(default.aws_limiter, infrasql_aws::LimiterMode::Adaptive);
    assert_eq!(default.aws_concurrency, 16);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "aws-limiter = \"fixed\"\naws-concurrency = 4\n").unwrap();
    let from_file = ServeArgs {
        config: Some(path),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    assert_eq!(from_file.aws_limiter, infrasql_aws::LimiterMode::Fixed);
    assert_eq!(from_file.aws_concurrency, 4);
    let e = ServeArgs {
        aws_limiter: Some("bogus".into()),
        ..Default::default()
    }
    .resolve()
    .unwrap_err()
    .to_string();
    assert!(e.contains("--aws-limiter \"bogus\""), "{e}");
}

#[test]
fn trust_is_refused_off_loopback() {
    let args = ServeArgs {
        listen: Some("0.0.0.0:5433".parse().unwrap()),
        auth: Some(AuthMode::Trust),
        ..Default::default()
    };
    let e = args.resolve().unwrap_err().to_string();
    assert!(e.contains("loopback"), "{e}");
}

#[test]
fn unknown_keys_in_the_file_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "lisen = \"x\"\n").unwrap();
    let e = ServeArgs {
        config: Some(path),
        ..Default::default()
    }
    .resolve()
    .unwrap_err();
    assert!(matches!(e, ConfigError::Parse { .. }));
}

#[test]
fn worker_threads_come_from_the_file_default_to_half_the_cores_and_never_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "worker-threads = 3\n").unwrap();
    let from_file = ServeArgs {
        config: Some(path),
        ..Default::default()
    };
    assert_eq!(from_file.resolve().unwrap().worker_threads, 3);
    let cores = std::thread::available_parallelism().unwrap().get();
    let default = ServeArgs::default().resolve().unwrap().worker_threads;
    assert_eq!(default, (cores / 2).max(1));
    let e = ServeArgs {
        worker_threads: Some(0),
        ..Default::default()
    }
    .resolve()
    .unwrap_err()
    .to_string();
    assert!(e.contains("--worker-threads"), "{e}");
}

#[test]
fn max_connections_default_to_100_and_never_zero() {
    assert_eq!(ServeArgs::default().resolve().unwrap().max_connections, 100);
    let two = ServeArgs {
        max_connections: Some(2),
        ..Default::default()
    };
    assert_eq!(two.resolve().unwrap().max_connections, 2);
    let e = ServeArgs {
        max_connections: Some(0),
        ..Default::default()
    }
    .resolve()
    .unwrap_err()
    .to_string();
    assert!(e.contains("--max-connections"), "{e}");
}

#[test]
fn http_is_off_by_default_and_off_loopback_needs_tls() {
    assert_eq!(ServeArgs::default().resolve().unwrap().http, None);
    let open = ServeArgs {
        http: Some("0.0.0.0:9187".parse().unwrap()),
        ..Default::default()
    };
    let e = open.resolve().unwrap_err().to_string();
    assert!(
        e.contains("--http 0.0.0.0:9187 is not a loopback address"),
        "{e}"
    );
    let with_tls = ServeArgs {
        http: Some("0.0.0.0:9187".parse().unwrap()),
        tls_cert: Some("c.pem".into()),
        tls_key: Some("k.pem".into()),
        ..Default::default()
    };
    assert_eq!(
        with_tls.resolve().unwrap().http,
        Some("0.0.0.0:9187".parse().unwrap())
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "http = \"127.0.0.1:9187\"\n").unwrap();
    let from_file = ServeArgs {
        config: Some(path),
        ..Default::default()
    };
    assert_eq!(
        from_file.resolve().unwrap().http,
        Some("127.0.0.1:9187".parse().unwrap())
    );
}
