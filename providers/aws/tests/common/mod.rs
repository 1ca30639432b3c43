//! A real moto server for provider tests: real SDK, real HTTP, real SigV4.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use infrasql_aws::{AwsSettings, Clients};

pub struct Moto {
    child: Child,
    pub url: String,
}

impl Moto {
    pub fn start() -> Moto {
        Self::start_with_env(&[])
    }

    /// moto with settings, e.g. `MOTO_ENABLE_AMI_VALIDATION=true`.
    pub fn start_with_env(env: &[(&str, &str)]) -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server on PATH (pip install 'moto[server]')");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, url }
    }

    pub async fn clients(&self) -> Arc<Clients> {
        Arc::new(
            Clients::new(&AwsSettings {
                endpoint_url: Some(self.url.clone()),
                static_credentials: Some(("testing".into(), "testing".into())),
                region: Some("us-east-1".into()),
                max_concurrency: None,
            })
            .await,
        )
    }

    /// A raw SDK client, to check what really exists independently of the provider.
    pub async fn ec2(&self) -> aws_sdk_ec2::Client {
        self.clients().await.ec2("us-east-1").await.client.clone()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn ctx() -> infrasql_provider::ApplyContext {
    infrasql_provider::ApplyContext {
        region: "us-east-1".into(),
        apply_id: "test-apply".into(),
    }
}

pub fn props(v: serde_json::Value) -> infrasql_provider::Props {
    v.as_object().unwrap().clone()
}
