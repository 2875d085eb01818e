use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use otpgate::auth::SystemClock;
use otpgate::config::{Config, Documented, Overrides};
use otpgate::store::Store;
use otpgate::{Application, build_authenticator, http, openapi_json, telemetry};

/// Password + TOTP two-factor authentication as a JSON REST API.
#[derive(Debug, Parser)]
#[command(name = "otpgate", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Print the OpenAPI document.
    Openapi,
    /// Operator commands on one account.
    Admin {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(subcommand)]
        action: AdminAction,
    },
}

#[derive(Debug, Subcommand)]
enum AdminAction {
    /// Turn two-factor off (secret and recovery codes erased, sessions
    /// revoked): for the user who lost both phone and recovery codes.
    #[command(name = "reset-2fa")]
    ResetTwoFactor { username: String },
    /// Revoke every session of the user.
    RevokeSessions { username: String },
    /// Delete the account and everything of it (sessions, tokens, secret,
    /// recovery codes, security log, throttle rows): the username is free
    /// again.
    DeleteUser { username: String },
    /// Show the account's state: 2FA, sessions, recovery codes, last events.
    Show { username: String },
    /// Prune now what the server prunes hourly (old events, expired pending
    /// tokens, ended sessions, expired device tokens, idle throttle rows).
    Prune,
    /// Re-encrypt every TOTP secret under OTPGATE_ENCRYPTION_KEY; the old
    /// key must be listed in OTPGATE_PREVIOUS_ENCRYPTION_KEYS meanwhile.
    RotateEncryptionKey,
}

#[derive(Debug, Default, Args)]
struct DatabaseArgs {
    /// postgres://… or a SQLite path
    #[arg(long)]
    database_url: Option<String>,
    /// Where generated keys and the default SQLite file live
    #[arg(long)]
    data_dir: Option<String>,
}

#[derive(Debug, Default, Args)]
struct ServeArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// host:port to listen on
    #[arg(long)]
    bind: Option<String>,
    /// Issuer shown in authenticator apps
    #[arg(long)]
    issuer: Option<String>,
    /// bcrypt cost, 4 to 31
    #[arg(long)]
    bcrypt_cost: Option<String>,
}

impl ServeArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            database_url: self.database.database_url.clone(),
            data_dir: self.database.data_dir.clone(),
            bind: self.bind.clone(),
            issuer: self.issuer.clone(),
            bcrypt_cost: self.bcrypt_cost.clone(),
        }
    }
}

/// The command line, each flag's help ending with its variable and default
/// as the configuration code has them.
fn command() -> clap::Command {
    let settings = Config::documented();
    Cli::command().mut_subcommands(|subcommand| annotate_flags(subcommand, &settings))
}

fn annotate_flags(command: clap::Command, settings: &[Documented]) -> clap::Command {
    settings.iter().fold(command, |command, setting| {
        let Some(flag) = setting.flag else {
            return command;
        };
        if !command.get_arguments().any(|arg| arg.get_id() == flag) {
            return command;
        }
        command.mut_arg(flag, |arg| {
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            arg.help(format!(
                "{help} [env: {}] [default: {}]",
                setting.name, setting.default
            ))
        })
    })
}

fn main() -> ExitCode {
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Openapi => {
            print!("{}", openapi_json(&http::openapi()));
            ExitCode::SUCCESS
        }
        Command::Migrate(args) => {
            let overrides = ServeArgs {
                database: args,
                ..ServeArgs::default()
            }
            .overrides();
            let config = match Config::from_env(&overrides) {
                Ok(config) => config,
                Err(error) => return config_error(&error),
            };
            match Store::migrate(&config.database_url) {
                Ok(applied) => {
                    println!(
                        "applied {applied} migration(s) to {}",
                        config.database_url.redacted()
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("otpgate: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Admin { database, action } => {
            let overrides = ServeArgs {
                database,
                ..ServeArgs::default()
            }
            .overrides();
            let config = match Config::from_env(&overrides) {
                Ok(config) => config,
                Err(error) => return config_error(&error),
            };
            let outcome = actix_web::rt::System::new().block_on(admin(config, action));
            match outcome {
                Ok(message) => {
                    println!("{message}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("otpgate: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve(args) => {
            let config = match Config::from_env(&args.overrides()) {
                Ok(config) => config,
                Err(error) => return config_error(&error),
            };
            telemetry::init(config.log_format);
            let served = actix_web::rt::System::new().block_on(async move {
                Application::build(config)
                    .await?
                    .run_until_signalled()
                    .await?;
                anyhow::Ok(())
            });
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => match error.downcast_ref::<otpgate::config::ConfigError>() {
                    Some(config) => config_error(config),
                    None => {
                        eprintln!("otpgate: {error:#}");
                        ExitCode::FAILURE
                    }
                },
            }
        }
    }
}

async fn admin(config: Config, action: AdminAction) -> anyhow::Result<String> {
    let auth = build_authenticator(&config, Arc::new(SystemClock)).await?;
    let unknown = |name: &str| anyhow::anyhow!("no user named {name:?}");
    Ok(match action {
        AdminAction::ResetTwoFactor { username } => {
            let account = auth
                .admin_reset_two_factor(&username)
                .await?
                .ok_or_else(|| unknown(&username))?;
            format!(
                "two-factor reset for {:?} ({}): secret and recovery codes erased, every \
                 session revoked; the next login must enrol again",
                account.username, account.id
            )
        }
        AdminAction::RevokeSessions { username } => {
            let revoked = auth
                .admin_revoke_sessions(&username)
                .await?
                .ok_or_else(|| unknown(&username))?;
            format!("revoked {revoked} live session(s) of {username:?}")
        }
        AdminAction::DeleteUser { username } => {
            let (account, erased) = auth
                .admin_delete_user(&username)
                .await?
                .ok_or_else(|| unknown(&username))?;
            format!(
                "deleted {:?} ({}) with {} session(s), {} device token(s) and {} throttle \
                 entr(ies); every token of theirs is refused and the username is free again",
                account.username,
                account.id,
                erased.sessions,
                erased.device_tokens,
                erased.throttles
            )
        }
        AdminAction::Prune => {
            let started = std::time::Instant::now();
            let pruned = auth.prune().await?;
            format!(
                "pruned {} event(s), {} pending token(s), {} session(s), {} device token(s) and \
                 {} throttle row(s) in {} ms",
                pruned.events,
                pruned.pending_tokens,
                pruned.sessions,
                pruned.devices,
                pruned.throttles,
                started.elapsed().as_millis()
            )
        }
        AdminAction::RotateEncryptionKey => {
            let resealed = auth.admin_reseal_secrets().await?;
            format!(
                "re-encrypted {resealed} TOTP secret(s) under the current key; every secret now \
                 uses it. Recovery codes issued before the rotation keep working while the old \
                 key stays in OTPGATE_PREVIOUS_ENCRYPTION_KEYS (users who regenerate their codes \
                 no longer need it)"
            )
        }
        AdminAction::Show { username } => {
            let summary = auth
                .admin_summary(&username)
                .await?
                .ok_or_else(|| unknown(&username))?;
            let mut out = format!(
                "user:                  {}\nid:                    {}\ncreated:               {}\n\
                 two-factor enabled:    {}\nlive sessions:         {}\n\
                 unused recovery codes: {}\nlast events:",
                summary.account.username,
                summary.account.id,
                summary.account.created_at.to_rfc3339(),
                summary.account.two_factor_enabled,
                summary.live_sessions,
                summary.unused_recovery_codes,
            );
            for event in summary.recent_events {
                out.push_str(&format!(
                    "\n  {}  {:<27} ip={} agent={}",
                    event.at.to_rfc3339(),
                    event.event_type,
                    event.ip.as_deref().unwrap_or("-"),
                    event.user_agent.as_deref().unwrap_or("-"),
                ));
            }
            out
        }
    })
}

fn config_error(error: &otpgate::config::ConfigError) -> ExitCode {
    eprintln!("otpgate: {error}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flag that overrides a variable says which, and its default.
    #[test]
    fn help_names_each_flags_variable_and_default() {
        let mut command = command();
        let help = command
            .find_subcommand_mut("serve")
            .expect("serve")
            .render_help()
            .to_string();
        for (flag, expected) in [
            ("--bind", "[env: OTPGATE_BIND] [default: 127.0.0.1:8080]"),
            ("--issuer", "[env: OTPGATE_ISSUER] [default: otpgate]"),
            ("--bcrypt-cost", "[env: OTPGATE_BCRYPT_COST] [default: 12]"),
            ("--data-dir", "[env: OTPGATE_DATA_DIR] [default: data]"),
            (
                "--database-url",
                "[env: DATABASE_URL] [default: otpgate.db in the data dir]",
            ),
        ] {
            let line = help
                .lines()
                .skip_while(|line| !line.trim_start().starts_with(flag))
                .take_while(|line| !line.trim().is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(line.contains(expected), "{flag}: {line}");
        }
    }

    #[test]
    fn command_line_is_well_formed() {
        command().debug_assert();
    }
}
