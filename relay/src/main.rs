//! `pocnet-relay`: the command line around the relay library.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use pocnet_relay::{admin, Config};
use zeroize::Zeroizing;

/// pocnet relay: stores and forwards end-to-end encrypted envelopes between enrolled
/// Points of Contact over QUIC. It never sees plaintext.
///
/// The relay's own key file is encrypted; its passphrase comes from
/// POCNET_RELAY_PASSPHRASE, from --passphrase-file, or from a prompt.
#[derive(Parser)]
#[command(name = "pocnet-relay", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory with a new relay identity and print its fingerprint
    /// (the value every client pins).
    Init {
        /// Data directory to create.
        #[arg(long, env = "POCNET_RELAY_DATA")]
        data: PathBuf,
        /// The Secretariat's directory key, as `pocnet secretariat genesis` prints it
        /// (`<origin>+<key id>+<key>`): the relay stores only the log it signs.
        #[arg(long)]
        directory: String,
        /// Read the key passphrase from this file (first line).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Run the relay until SIGINT or SIGTERM.
    Serve {
        /// Data directory made by `init`.
        #[arg(long, env = "POCNET_RELAY_DATA")]
        data: PathBuf,
        /// UDP address to listen on (overrides relay.toml's `listen`).
        #[arg(long, env = "POCNET_RELAY_LISTEN")]
        listen: Option<String>,
        /// Undelivered-message lifetime in seconds (overrides `ttl_secs`).
        #[arg(long, env = "POCNET_RELAY_TTL_SECS")]
        ttl_secs: Option<u64>,
        /// Per-sender rate limit, envelopes per second (overrides `rate_per_sec`).
        #[arg(long, env = "POCNET_RELAY_RATE_PER_SEC")]
        rate_per_sec: Option<f64>,
        /// Override any relay.toml setting, e.g. `--set queue_quota=50000` (repeatable).
        /// Environment variables POCNET_RELAY_<SETTING> do the same.
        #[arg(long = "set", value_name = "SETTING=VALUE")]
        set: Vec<String>,
        /// Read the key passphrase from this file (first line).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Block a key at this relay: refused from its next handshake, whatever the directory
    /// says. The lasting remedy is a revocation in the directory log (by its national
    /// authority or the Secretariat); this is the operator's emergency brake.
    Revoke {
        #[arg(long, env = "POCNET_RELAY_DATA")]
        data: PathBuf,
        /// A handle (CL.primary) or a fingerprint prefix (at least 8 hex digits).
        who: String,
    },
    /// List enrolled members.
    Members {
        #[arg(long, env = "POCNET_RELAY_DATA")]
        data: PathBuf,
    },
    /// Print the relay's fingerprint.
    Fingerprint {
        #[arg(long, env = "POCNET_RELAY_DATA")]
        data: PathBuf,
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
}

fn passphrase(file: Option<&Path>, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    if let Some(f) = file {
        let text = Zeroizing::new(
            std::fs::read_to_string(f).with_context(|| format!("cannot read passphrase file {}", f.display()))?,
        );
        return Ok(Zeroizing::new(text.lines().next().unwrap_or("").to_string()));
    }
    if let Ok(p) = std::env::var("POCNET_RELAY_PASSPHRASE") {
        return Ok(Zeroizing::new(p));
    }
    let p = Zeroizing::new(
        rpassword::prompt_password("Relay key passphrase: ")
            .context("no passphrase: set POCNET_RELAY_PASSPHRASE or use --passphrase-file")?,
    );
    if confirm && *p != *Zeroizing::new(rpassword::prompt_password("Repeat passphrase: ")?) {
        anyhow::bail!("the passphrases differ");
    }
    Ok(p)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("POCNET_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Init {
            data,
            directory,
            passphrase_file,
        } => {
            let p = passphrase(passphrase_file.as_deref(), true)?;
            if p.is_empty() {
                anyhow::bail!("the relay key passphrase must not be empty");
            }
            let id = admin::init(&data, p.as_bytes(), &directory)?;
            println!("relay initialised in {}", data.display());
            println!("fingerprint: {}", id.fingerprint());
            println!(
                "clients pin it with: pocnet enrol --relay HOST:PORT --relay-key {} --directory VKEY",
                id.fingerprint()
            );
        }
        Command::Fingerprint { data, passphrase_file } => {
            let id = admin::load_identity(&data, passphrase(passphrase_file.as_deref(), false)?.as_bytes())?;
            println!("{}", id.fingerprint());
        }
        Command::Serve {
            data,
            listen,
            ttl_secs,
            rate_per_sec,
            set,
            passphrase_file,
        } => {
            let mut cfg = Config::load(&data, &set)?;
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(t) = ttl_secs {
                cfg.ttl_secs = t;
            }
            if let Some(r) = rate_per_sec {
                cfg.rate_per_sec = r;
                cfg.rate_burst = cfg.rate_burst.max(r);
            }
            let id = admin::load_identity(&data, passphrase(passphrase_file.as_deref(), false)?.as_bytes())?;
            let fp = id.fingerprint();
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let running = pocnet_relay::start(data, cfg, id).await?;
                // Machine-readable first line: tests and scripts read the bound address.
                println!("listening on {} fingerprint {}", running.addr, fp);
                use tokio::signal::unix::{signal, SignalKind};
                let mut term = signal(SignalKind::terminate())?;
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                tracing::info!("shutting down: finishing in-flight requests");
                running.shutdown().await;
                anyhow::Ok(())
            })?;
        }
        Command::Revoke { data, who } => {
            let what = admin::revoke(&data, &who)?;
            println!("blocked {what}");
        }
        Command::Members { data } => {
            for (handle, name, fp, revoked) in admin::members(&data)? {
                println!("{handle:<16} {fp}  {name}{}", if revoked { "  [revoked]" } else { "" });
            }
        }
    }
    Ok(())
}
