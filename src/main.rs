use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use otpgate::config::{Config, Overrides};
use otpgate::store::Store;
use otpgate::{Application, http, openapi_json, telemetry};

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
        Command::Serve(args) => {
            let config = match Config::from_env(&args.overrides()) {
                Ok(config) => config,
                Err(error) => return config_error(&error),
            };
            telemetry::init(config.log_format);
            let served = actix_web::rt::System::new().block_on(async move {
                Application::build(config).await?.run_until_stopped().await?;
                anyhow::Ok(())
            });
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("otpgate: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn config_error(error: &otpgate::config::ConfigError) -> ExitCode {
    eprintln!("otpgate: {error}");
    ExitCode::from(2)
}
