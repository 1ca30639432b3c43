use clap::Parser;

fn main() -> std::process::ExitCode {
    if let Err(e) = infrasql::logging::init() {
        eprintln!("infrasql: {e}");
        return std::process::ExitCode::FAILURE;
    }
    match infrasql::cli::run(infrasql::cli::Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("infrasql: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
