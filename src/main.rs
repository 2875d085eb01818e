use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use otpgate::auth::SystemClock;
use otpgate::config::{Config, Overrides};
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
    /// Show the account's state: 2FA, sessions, recovery codes, last events.
    Show { username: String },
    /// Re-encrypt every TOTP secret under OTPGATE_ENCRYPTION_KEY; the old
    /// key must be listed in OTPGATE_PREVIOUS_ENCRYPTION_KEYS meanwhile.
    RotateEncryptionKey,
}

#[derive(Debug, Default, Args)]
struct DatabaseArgs {
    /// postgres://… or a SQLite path [env: DATABASE_URL] [default: data/otpgate.db]
    #[arg(long)]
    database_url: Option<String>,
    /// Where generated keys and the default SQLite file live [env: OTPGATE_DATA_DIR]
    #[arg(long)]
    data_dir: Option<String>,
}

#[derive(Debug, Default, Args)]
struct ServeArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// host:port to listen on [env: OTPGATE_BIND] [default: 127.0.0.1:8080]
    #[arg(long)]
    bind: Option<String>,
    /// Issuer shown in authenticator apps [env: OTPGATE_ISSUER] [default: otpgate]
    #[arg(long)]
    issuer: Option<String>,
    /// bcrypt cost, 4 to 31 [env: OTPGATE_BCRYPT_COST] [default: 12]
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

fn main() -> ExitCode {
    let cli = Cli::parse();
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
                    .run_until_stopped()
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
