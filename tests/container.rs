//! The image in `docker/` as users run it: built from the binary under
//! test, started beside the playground's moto image through
//! `testcontainers`, and a COMMIT through its wire port that makes a VPC in
//! that moto.
//!
//! The engine is podman (no Docker daemon runs on these machines): the
//! images are built with `podman build` first (`docker/podman/prepare`
//! makes the Debian base and the moto image, cached after the first run),
//! then `podman system service` serves the Docker API on a socket of this
//! test's own for testcontainers, and is stopped at the end. Without a
//! container engine the test fails and says so: it never skips.

mod common;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testcontainers::core::logs::LogFrame;
use testcontainers::core::{ContainerPort, Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

const IMAGE: &str = "localhost/infrasql";
const MOTO_IMAGE: &str = "localhost/infrasql-moto";
const TAG: &str = "test";
const BASE_IMAGE: &str = "localhost/debian:bookworm-slim";
/// Every container this test starts carries it, so that the engine's guard
/// can remove what a failed run left.
const LABEL: &str = "infrasql.test";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// podman with the settings these machines need (no systemd, runc), from
/// a file of the repository unless the caller names another.
fn podman() -> Command {
    let mut c = Command::new("podman");
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        c.env(
            "CONTAINERS_CONF",
            repo().join("docker/podman/containers.conf"),
        );
    }
    c
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        common::stdout(&out),
        common::stderr(&out)
    );
    common::stdout(&out).trim().to_owned()
}

/// No engine at all is a failure that says so, not a skip.
fn require_podman() {
    match podman().arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "no container engine answers: `podman --version` failed: {}",
            common::stderr(&o)
        ),
        Err(e) => panic!(
            "no container engine answers: podman is not installed ({e}); scripts/setup \
             installs it. This test builds and runs docker/Dockerfile for real and does not skip."
        ),
    }
}

/// The image of the binary under test. The build context holds nothing but
/// the binary, as docker/Dockerfile asks; the image it replaces is removed
/// so that runs do not pile up 150 MB layers.
fn build_image() {
    run(
        &mut Command::new(repo().join("docker/podman/prepare")),
        "docker/podman/prepare (base image, moto image)",
    );
    let old = podman()
        .args(["image", "inspect", "--format", "{{.Id}}"])
        .arg(format!("{IMAGE}:{TAG}"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| common::stdout(&o).trim().to_owned());
    let ctx = tempfile::tempdir().unwrap();
    let bin = ctx.path().join("infrasql");
    if std::fs::hard_link(common::bin(), &bin).is_err() {
        std::fs::copy(common::bin(), &bin).unwrap();
    }
    let new = run(
        podman()
            .args(["build", "--quiet", "--pull=never", "--format", "docker"])
            .arg(format!("--build-arg=BASE_IMAGE={BASE_IMAGE}"))
            .arg(format!("--tag={IMAGE}:{TAG}"))
            .arg("--file")
            .arg(repo().join("docker/Dockerfile"))
            .arg(ctx.path()),
        "podman build docker/Dockerfile",
    );
    if let Some(old) = old.filter(|o| !new.contains(o.as_str())) {
        let _ = podman().args(["rmi", &old]).output();
    }
}

/// `podman system service` on a socket of its own. Dropped last: it removes
/// what this run made (containers, network, volume), also after a failure,
/// then stops the service, so no daemon outlives the test.
struct Engine {
    child: Child,
    sock: PathBuf,
    _dir: tempfile::TempDir,
    label: String,
}

impl Engine {
    fn start() -> Engine {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("podman.sock");
        let child = podman()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", sock.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start podman system service");
        let engine = Engine {
            child,
            sock,
            _dir: dir,
            label: format!("{}-{}", std::process::id(), rand_suffix()),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !engine.pings() {
            assert!(
                Instant::now() < deadline,
                "no container engine answers: podman system service did not answer /_ping on {} within 30 s",
                engine.sock.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        engine
    }

    /// The Docker API's `GET /_ping` answers `OK`.
    fn pings(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = UnixStream::connect(&self.sock) else {
            return false;
        };
        let mut answer = String::new();
        s.write_all(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
            .is_ok()
            && s.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.")
            && answer.ends_with("OK")
    }

    /// The name of this run's network (testcontainers makes it).
    fn network(&self) -> String {
        format!("infrasql-test-{}", self.label)
    }

    /// The name of this run's data volume (the engine makes it).
    fn volume(&self) -> String {
        format!("infrasql-test-{}", self.label)
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

impl Drop for Engine {
    fn drop(&mut self) {
        let filter = format!("label={LABEL}={}", self.label);
        if let Ok(o) = podman().args(["ps", "-aq", "--filter", &filter]).output() {
            for id in common::stdout(&o).split_whitespace() {
                let _ = podman().args(["rm", "-f", "-t", "0", id]).output();
            }
        }
        let _ = podman()
            .args(["network", "rm", "-f", &self.network()])
            .output();
        let _ = podman()
            .args(["volume", "rm", "-f", &self.volume()])
            .output();
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A container's output on this test's stderr (shown when it fails).
fn echo(name: &'static str) -> impl Fn(&LogFrame) + Send + Sync {
    move |frame| {
        let bytes = match frame {
            LogFrame::StdOut(b) | LogFrame::StdErr(b) => b,
        };
        eprint!("[{name}] {}", String::from_utf8_lossy(bytes));
    }
}

/// A container's address on a network. Asked of podman itself: podman 4.3
/// reports `HostConfig.NetworkMode` as "bridge" whatever the network, so
/// testcontainers' `get_bridge_ip_address` finds no address.
fn address_on(id: &str, network: &str) -> String {
    let ip = run(
        podman().args([
            "container",
            "inspect",
            "--format",
            &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
            id,
        ]),
        "podman container inspect",
    );
    assert!(
        ip.parse::<std::net::IpAddr>().is_ok(),
        "no address of {id} on {network}: {ip:?}"
    );
    ip
}

/// The host port a container's TCP port is published on. Asked of podman
/// too: it reports a binding on every address with an empty `HostIp`, which
/// testcontainers' `get_host_port_ipv4` skips.
fn host_port(id: &str, port: u16) -> u16 {
    let out = run(
        podman().args(["port", id, &format!("{port}/tcp")]),
        "podman port",
    );
    out.lines()
        .find_map(|l| l.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
        .unwrap_or_else(|| panic!("{id}'s port {port} is not published: {out:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_commits_into_the_playground() {
    let t0 = Instant::now();
    require_podman();
    build_image();
    let built = t0.elapsed();
    let engine = Engine::start();
    // testcontainers reads DOCKER_HOST when it first connects, below.
    std::env::set_var("DOCKER_HOST", engine.docker_host());

    // A network of their own, as compose gives its services (podman's
    // default network does not report addresses the Docker way).
    let network = engine.network();
    let moto = GenericImage::new(MOTO_IMAGE, TAG)
        .with_exposed_port(ContainerPort::Tcp(5000))
        .with_wait_for(WaitFor::message_on_stderr("Running on"))
        .with_network(&network)
        .with_label(LABEL, &engine.label)
        .with_log_consumer(echo("moto"))
        .with_startup_timeout(Duration::from_secs(60))
        .start()
        .await
        .unwrap_or_else(|e| panic!("the moto container did not start: {e}"));
    // infrasql reaches moto on that network by its address (podman here
    // has no DNS plugin for service names).
    let moto_ip = address_on(moto.id(), &network);

    let infrasql = GenericImage::new(IMAGE, TAG)
        .with_exposed_port(ContainerPort::Tcp(5433))
        .with_wait_for(WaitFor::message_on_stdout(
            "infrasql listening on 0.0.0.0:5433",
        ))
        .with_env_var(
            "INFRASQL_AWS_ENDPOINT_URL",
            format!("http://{moto_ip}:5000"),
        )
        .with_env_var("AWS_ACCESS_KEY_ID", "testing")
        .with_env_var("AWS_SECRET_ACCESS_KEY", "testing")
        .with_env_var("AWS_REGION", "us-east-1")
        .with_mount(Mount::volume_mount(engine.volume(), "/var/lib/infrasql"))
        .with_shm_size(256 << 20)
        .with_network(&network)
        .with_label(LABEL, &engine.label)
        .with_log_consumer(echo("infrasql"))
        .with_startup_timeout(Duration::from_secs(120))
        .start()
        .await
        .unwrap_or_else(|e| panic!("the infrasql container did not start: {e}"));
    let started = t0.elapsed();

    // The data dir is the named volume: the generated password is there,
    // written by the image's own user (PostgreSQL refuses root). Read on
    // the host, not by `exec`: podman keeps an exec's conmon for 5 minutes.
    let volume = PathBuf::from(run(
        podman().args([
            "volume",
            "inspect",
            "--format",
            "{{.Mountpoint}}",
            &engine.volume(),
        ]),
        "podman volume inspect",
    ));
    let password_file = volume.join("password");
    let password = std::fs::read_to_string(&password_file).unwrap_or_else(|e| {
        panic!(
            "the password in the volume, {}: {e}",
            password_file.display()
        )
    });
    let password = password.trim();
    assert!(!password.is_empty(), "no password in the volume");
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&password_file).unwrap();
        assert_eq!(meta.uid(), 10001, "written by the image's user infrasql");
        assert_eq!(meta.mode() & 0o077, 0, "readable by its owner only");
        assert!(
            volume.join("pgdata/PG_VERSION").is_file(),
            "the cluster is in the volume"
        );
    }

    // From the host through the published port: off loopback, with SCRAM.
    let port = host_port(infrasql.id(), 5433);
    let c = common::connect(&format!(
        "host=127.0.0.1 port={port} user=infrasql password={password} dbname=infrasql connect_timeout=10"
    ))
    .await
    .unwrap_or_else(|e| panic!("connect to the container's wire port {port}: {e}"));
    c.batch_execute(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('in-a-container', '10.42.0.0/16');
         COMMIT;",
    )
    .await
    .unwrap_or_else(|e| panic!("COMMIT through the container: {e}"));
    let vpc_id: String = common::one(
        &c,
        "select vpc_id from aws.vpc where name = 'in-a-container'",
    )
    .await;
    assert!(vpc_id.starts_with("vpc-"), "the row got AWS's id: {vpc_id}");

    // And moto, asked directly on its published port, has the VPC.
    let moto_port = host_port(moto.id(), 5000);
    let clients = infrasql_aws::Clients::new(&infrasql_aws::AwsSettings {
        endpoint_url: Some(format!("http://127.0.0.1:{moto_port}")),
        static_credentials: Some(("testing".into(), "testing".into())),
        region: Some("us-east-1".into()),
        max_concurrency: None,
        limiter: Default::default(),
        timeouts: Default::default(),
    })
    .await;
    let ec2 = clients.ec2("us-east-1").await.client.clone();
    let vpcs = ec2
        .describe_vpcs()
        .vpc_ids(&vpc_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeVpcs {vpc_id} in the moto container: {e:?}"));
    let vpc = vpcs.vpcs().first().expect("the VPC is in moto");
    assert_eq!(vpc.cidr_block(), Some("10.42.0.0/16"));
    assert!(
        vpc.tags()
            .iter()
            .any(|t| t.key() == Some("Name") && t.value() == Some("in-a-container")),
        "the Name tag: {:?}",
        vpc.tags()
    );

    drop(c);
    infrasql.rm().await.unwrap();
    moto.rm().await.unwrap();
    drop(engine);
    eprintln!(
        "container test: images built in {:.1} s, containers ready at {:.1} s, done in {:.1} s",
        built.as_secs_f64(),
        started.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}
