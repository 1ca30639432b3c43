use clap::Parser;

fn main() -> std::process::ExitCode {
    if let Err(e) = infrasql::logging::init() {
        eprintln!("infrasql: {e}");
        return std::process::ExitCode::FAILURE;
    }
    // A usage error exits 1, as any other error: clap's own code is 2, which
    // `infrasql plan` uses for "there are changes", so a mistyped flag in a
    // CI job would pass as a plan.
    let cli = match infrasql::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                std::process::ExitCode::FAILURE
            } else {
                std::process::ExitCode::SUCCESS
            };
        }
    };
    match infrasql::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("infrasql: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
