//! Relay configuration: `relay.toml` in the data directory. Every setting has a
//! default; `serve` flags and `POCNET_RELAY_*` environment variables override it.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// All relay settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// UDP address to listen on.
    pub listen: String,
    /// Largest inline envelope, bytes.
    pub max_envelope_bytes: u64,
    /// Largest attachment envelope, bytes.
    pub max_attachment_bytes: u64,
    /// Most pending items per recipient.
    pub queue_quota: u64,
    /// Sustained envelopes per second per sender.
    pub rate_per_sec: f64,
    /// Burst size per sender.
    pub rate_burst: f64,
    /// How long an undelivered envelope is kept, seconds.
    pub ttl_secs: u64,
    /// How often expired items are swept, seconds.
    pub sweep_interval_secs: u64,
    /// Most requests committed in one group.
    pub batch_max: usize,
    /// Most concurrent connections.
    pub max_connections: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:4433".into(),
            max_envelope_bytes: 1024 * 1024,
            max_attachment_bytes: 100 * 1024 * 1024,
            queue_quota: 10_000,
            rate_per_sec: 200.0,
            rate_burst: 2_000.0,
            ttl_secs: 30 * 24 * 3600,
            sweep_interval_secs: 60,
            batch_max: 1024,
            max_connections: 10_000,
        }
    }
}

impl Config {
    /// Reads `relay.toml`, or the defaults if it does not exist.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("relay.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }
    /// Writes `relay.toml`.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(dir.join("relay.toml"), toml::to_string_pretty(self)?)?;
        Ok(())
    }
}
