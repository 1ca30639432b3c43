use clap::Parser;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("INFRASQL_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,tokio_postgres=warn,aws_config=error")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    match infrasql::cli::run(infrasql::cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("infrasql: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
