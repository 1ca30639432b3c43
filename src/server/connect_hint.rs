//! The line `infrasql serve` prints for a person to connect with.

use super::Running;
use crate::config::AuthMode;

impl Running {
    /// The line a person pastes into a shell to connect.
    pub fn connect_hint(&self) -> String {
        let host = self.local_addr.ip();
        let host = if host.is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            host.to_string()
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let user = self
            .login
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let url = format!(
            "postgresql://{user}{host}:{}/{}",
            self.local_addr.port(),
            self.login.database
        );
        connect_line(&url, self.login.password_file.as_deref(), self.auth)
    }

    /// Stop accepting, let sessions finish (up to the grace period), then
    /// stop the embedded PostgreSQL and the playground.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let _ = (&mut self.frontend).await;
        let _ = (&mut self.recovery).await;
        if let Some(s) = self.sync.as_mut() {
            let _ = s.await;
        }
        if let Some(r) = self.retention.as_mut() {
            let _ = r.await;
        }
        if let Some(g) = self.gitops.as_mut() {
            let _ = g.await;
        }
        if let Some(h) = self.http.as_mut() {
            let _ = h.await;
        }
        self.store.stop().await;
        if let Some(p) = self.playground.take() {
            p.stop().await;
        }
    }
}

/// `psql "<url>"`, with the generated password read from its file when
/// the server asks for one: under `--auth trust` it does not, and a
/// PGPASSWORD there would only suggest it matters.
fn connect_line(url: &str, password_file: Option<&std::path::Path>, auth: AuthMode) -> String {
    match (password_file, auth) {
        (Some(p), AuthMode::Scram) => {
            format!("PGPASSWORD=\"$(cat '{}')\" psql \"{url}\"", p.display())
        }
        _ => format!("psql \"{url}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connect_line_names_a_password_only_when_one_is_asked_for() {
        let url = "postgresql://alice@127.0.0.1:5433/infrasql";
        let file = std::path::Path::new("/data/password");
        assert_eq!(
            connect_line(url, Some(file), AuthMode::Scram),
            format!("PGPASSWORD=\"$(cat '/data/password')\" psql \"{url}\"")
        );
        assert_eq!(
            connect_line(url, Some(file), AuthMode::Trust),
            format!("psql \"{url}\"")
        );
        assert_eq!(
            connect_line(url, None, AuthMode::Scram),
            format!("psql \"{url}\"")
        );
    }
}
