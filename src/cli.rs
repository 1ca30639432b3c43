//! Command-line entry points.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod serve;

use serve::{runtime, serve, serve_runtime};

use crate::client::render::Format;
use crate::client::status::StatusFormat;
use crate::config::ServeArgs;

#[derive(Debug, Parser)]
#[command(
    name = "infrasql",
    version,
    about = "Infrastructure as SQL: cloud resources are tables"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start-up, so the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the PostgreSQL-wire server.
    Serve(ServeArgs),
    /// Print the reference of every resource table (Markdown), generated
    /// from the providers' descriptions.
    Docs,
    /// Run SQL files in one transaction of a plan-only session on a
    /// running infrasql, print the plan and roll back; nothing is applied.
    /// Exit code: 0 no changes, 2 changes, 1 error or a policy that would
    /// refuse the COMMIT.
    Plan(PlanArgs),
    /// Print the plan that undoes an apply (the SQL infra.revert() writes,
    /// run in a plan-only session); apply it with --yes. Exit code without
    /// --yes: 0 nothing to undo, 2 changes, 1 error; with --yes: 0 applied,
    /// 1 error.
    Revert(RevertArgs),
    /// Apply migration files on a running infrasql, each FILE in its own
    /// transaction, recorded in infra.migration; files already recorded
    /// are skipped. A DIR's *.sql files run in name order (0001_network.sql,
    /// 0002_db.sql, ...). Exit code: 0 applied or nothing to apply, 1 error.
    Apply(ApplyArgs),
    /// Show the server's version, the sync state per table and region, the
    /// open drift per table and the last 10 applies.
    /// Exit code: 0; with --fail-on-drift, 2 when drift is open; 1 error.
    Status(StatusArgs),
    /// Decide about a stack: delete it with its resources, or confirm the
    /// large prune the GitOps agent holds back.
    #[command(subcommand)]
    Stack(StackCommand),
    /// Login roles of this database: add one to a group, limit one to a
    /// tag or a stack. Run by an admin.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Bearer tokens for the HTTP listener (`serve --http`): create one
    /// (printed once; only its SHA-256 is stored), list or revoke them.
    /// Run by an admin.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it once on stdout; its requests read as the
    /// reader or the admin group.
    Create {
        #[command(flatten)]
        kind: crate::client::tokens::Kind,
        /// Connection URL or key=value string; without it the PG* variables
        /// and ~/.pgpass are used, as libpq does.
        #[arg(long)]
        url: Option<String>,
    },
    /// The tokens: id, kind, when and by whom made, last used (no hashes).
    List {
        /// Connection URL or key=value string, as for create.
        #[arg(long)]
        url: Option<String>,
    },
    /// Delete a token: requests with it are refused from now on.
    Revoke {
        id: i64,
        /// Connection URL or key=value string, as for create.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create a login role with a generated password, printed once on
    /// stdout (only its SCRAM verifier reaches the server).
    Add {
        name: String,
        #[command(flatten)]
        kind: crate::client::roles::Kind,
        /// Connection URL or key=value string; without it the PG* variables
        /// and ~/.pgpass are used, as libpq does.
        #[arg(long)]
        url: Option<String>,
    },
    /// Limit a role to the resources with a tag (--tag KEY=VALUE) or of a
    /// stack (--stack NAME): row-level security hides the others from it
    /// and refuses writes that leave the scope. Repeat to widen it.
    Scope {
        name: String,
        #[arg(long, conflicts_with = "stack")]
        tag: Option<String>,
        #[arg(long)]
        stack: Option<String>,
        /// Connection URL or key=value string, as for add.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// Delete every resource of the stack, then forget it (infra.stack_drop).
    /// Remove its directory from the agent's repository first, or the
    /// agent applies it again.
    Delete {
        name: String,
        /// Let the delete remove more than infra.max_deletes resources.
        #[arg(long)]
        allow_mass_delete: bool,
        /// Connection URL or key=value string; without it the PG* variables
        /// and ~/.pgpass are used, as libpq does.
        #[arg(long)]
        url: Option<String>,
    },
    /// Let the git revision the stack waits on prune what it no longer
    /// declares (infra.stack_confirm); the agent applies it next round.
    Confirm {
        name: String,
        /// Connection URL or key=value string, as for delete.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct RevertArgs {
    /// The apply to undo (infra.apply.apply_id).
    pub apply_id: String,
    /// Apply the revert in one transaction instead of only showing its plan.
    #[arg(long)]
    pub yes: bool,
    /// Consent to re-creating resources whose data or write-only values do
    /// not come back (SET infra.allow_replace = on for the script).
    #[arg(long)]
    pub allow_replace: bool,
    /// Connection URL or key=value string; without it the PG* variables
    /// and ~/.pgpass are used, as libpq does.
    #[arg(long)]
    pub url: Option<String>,
    /// How the plan is shown (without --yes).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// SQL files, or directories whose *.sql files are applied in name order.
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
    /// Connection URL or key=value string; without it the PG* variables
    /// and ~/.pgpass are used, as libpq does.
    #[arg(long)]
    pub url: Option<String>,
    /// A recorded file whose content changed is an error (nothing runs).
    /// With this flag its new checksum is recorded instead and it is not
    /// run again (like flyway repair): put new changes in new files.
    #[arg(long, conflicts_with = "stack")]
    pub allow_changed: bool,
    /// Let this apply delete more than infra.max_deletes resources (a
    /// stack's prune, or a migration's DELETEs).
    #[arg(long)]
    pub allow_mass_delete: bool,
    #[command(flatten)]
    pub stack: crate::client::stack::StackOpts,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Connection URL or key=value string; without it the PG* variables
    /// and ~/.pgpass are used, as libpq does.
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
    pub format: StatusFormat,
    /// Exit 2 when any drift is open (a scheduled drift check).
    #[arg(long)]
    pub fail_on_drift: bool,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// SQL files, or directories whose *.sql files run in name order.
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
    /// Connection URL or key=value string; without it the PG* variables
    /// and ~/.pgpass are used, as libpq does.
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Only the files `infrasql apply` has not applied yet (not recorded
    /// in infra.migration): what merging a pull request would apply. A
    /// recorded file whose content changed is an error, as in apply.
    #[arg(long)]
    pub pending: bool,
    #[command(flatten)]
    pub stack: crate::client::stack::StackOpts,
}

/// Settings are resolved before the runtime exists, because one of them
/// sizes it.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let cfg = args.resolve()?;
            serve_runtime(cfg.worker_threads)?.block_on(serve(cfg))?;
        }
        Command::Docs => {
            let index = runtime(1)?.block_on(resource_index());
            print!("{}", crate::engine::registry::docs(&index));
        }
        Command::Plan(args) => {
            let view = runtime(1)?.block_on(crate::client::plan::run(
                args.url.as_deref(),
                &args.files,
                args.pending,
                &args.stack,
            ))?;
            print!("{}", crate::client::render::render(&view, args.format));
            // Terraform's -detailed-exitcode: 2 says there is something to
            // apply; a policy that would refuse the COMMIT is an error.
            return Ok(if crate::client::verdict::refused(&view.verdicts) {
                ExitCode::FAILURE
            } else if view.has_changes() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            });
        }
        Command::Revert(args) => return run_revert(args),
        Command::Apply(args) => {
            use std::io::IsTerminal;
            let terminal = std::io::stdout().is_terminal();
            let rt = runtime(1)?;
            match args.stack.stack() {
                Some(stack) => rt.block_on(crate::client::stack::apply(
                    args.url.as_deref(),
                    &args.files,
                    &stack,
                    &args.stack.vars()?,
                    args.allow_mass_delete,
                    terminal,
                ))?,
                None => {
                    rt.block_on(crate::client::apply::run(
                        args.url.as_deref(),
                        &args.files,
                        args.allow_changed,
                        args.allow_mass_delete,
                        &args.stack.vars()?,
                        terminal,
                    ))?;
                }
            }
        }
        Command::Stack(StackCommand::Delete {
            name,
            allow_mass_delete,
            url,
        }) => {
            let line = runtime(1)?.block_on(crate::client::stack_admin::delete(
                url.as_deref(),
                &name,
                allow_mass_delete,
            ))?;
            println!("{line}");
        }
        Command::Stack(StackCommand::Confirm { name, url }) => {
            let line =
                runtime(1)?.block_on(crate::client::stack_admin::confirm(url.as_deref(), &name))?;
            println!("{line}");
        }
        Command::Role(RoleCommand::Add { name, kind, url }) => {
            let (group, password) =
                runtime(1)?.block_on(crate::client::roles::add(url.as_deref(), &name, kind))?;
            eprintln!("created login role {name}, a member of {group}; its password (shown once):");
            println!("{password}");
        }
        Command::Role(RoleCommand::Scope {
            name,
            tag,
            stack,
            url,
        }) => {
            let scope = crate::client::roles::Scope::parse(tag.as_deref(), stack.as_deref())?;
            let line =
                runtime(1)?.block_on(crate::client::roles::scope(url.as_deref(), &name, &scope))?;
            println!("{line}");
        }
        Command::Token(cmd) => run_token(cmd)?,
        Command::Status(args) => {
            let status = runtime(1)?.block_on(crate::client::status::read(args.url.as_deref()))?;
            print!("{}", crate::client::status::render(&status, args.format));
            if args.fail_on_drift && status.open_drift() > 0 {
                return Ok(ExitCode::from(2));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_token(cmd: TokenCommand) -> anyhow::Result<()> {
    use crate::client::tokens;
    let rt = runtime(1)?;
    match cmd {
        TokenCommand::Create { kind, url } => {
            let (id, token) = rt.block_on(tokens::create(url.as_deref(), kind))?;
            eprintln!(
                "created HTTP token {id}; send it as `Authorization: Bearer <token>` (shown once):"
            );
            println!("{token}");
        }
        TokenCommand::List { url } => print!("{}", rt.block_on(tokens::list(url.as_deref()))?),
        TokenCommand::Revoke { id, url } => {
            println!("{}", rt.block_on(tokens::revoke(url.as_deref(), id))?)
        }
    }
    Ok(())
}

fn run_revert(args: RevertArgs) -> anyhow::Result<ExitCode> {
    use crate::client::revert;
    let consent = revert::Consent {
        allow_replace: args.allow_replace,
    };
    let rt = runtime(1)?;
    if args.yes {
        rt.block_on(revert::apply(
            args.url.as_deref(),
            &args.apply_id,
            consent,
            |line| println!("{line}"),
        ))?;
        println!("reverted {}", args.apply_id);
        return Ok(ExitCode::SUCCESS);
    }
    let (sql, view) = rt.block_on(revert::plan(args.url.as_deref(), &args.apply_id, consent))?;
    // On stderr, so --format json stays one JSON document.
    for line in revert::header(&sql) {
        eprintln!("{line}");
    }
    print!("{}", crate::client::render::render(&view, args.format));
    Ok(if view.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// The resource types, without reaching any cloud.
pub async fn resource_index() -> crate::engine::apply::Resources {
    let settings = infrasql_aws::AwsSettings {
        region: Some("us-east-1".into()),
        ..Default::default()
    };
    let clients = std::sync::Arc::new(infrasql_aws::Clients::new(&settings).await);
    crate::engine::registry::index(crate::providers::aws(clients))
}
