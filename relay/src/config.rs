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
    /// Largest inline envelope (`Send`, `Hold`), bytes.
    pub max_envelope_bytes: u64,
    /// Largest alert envelope (`Escalate`), bytes: sealed once to every POC of every
    /// targeted state, all ranks (X-Wing to 1,000 POCs is about 1.3 MB).
    pub max_alert_bytes: u64,
    /// Largest attachment envelope, bytes.
    pub max_attachment_bytes: u64,
    /// Most pending items per recipient.
    pub queue_quota: u64,
    /// Sustained envelopes (and receipts, and uploads) per second per sender.
    pub rate_per_sec: f64,
    /// Burst size per sender.
    pub rate_burst: f64,
    /// Sustained requests per second per key for each other request type (acks: 4×).
    pub request_rate_per_sec: f64,
    /// Burst size for other request types.
    pub request_burst: f64,
    /// Requests per second from all keys that are not enrolled, together (burst: 5×).
    pub unenrolled_rate_per_sec: f64,
    /// Most connections from keys that are not enrolled at once (each lives at most 30 s).
    pub max_unenrolled_connections: usize,
    /// Most of those from one source address.
    pub max_unenrolled_per_address: usize,
    /// How long such a connection may stay open, seconds: time to enrol.
    pub unenrolled_lifetime_secs: u64,
    /// Most live `Watch` streams per key.
    pub max_watchers_per_key: usize,
    /// Most requests in flight on one pipelined stream.
    pub max_inflight_per_stream: usize,
    /// Most attachment bytes (stored and partly uploaded) per member, MiB.
    pub upload_quota_mib: u64,
    /// Most attachment bytes in all, MiB.
    pub max_blob_mib: u64,
    /// How long an undelivered envelope is kept, seconds.
    pub ttl_secs: u64,
    /// How often expired items are swept, seconds.
    pub sweep_interval_secs: u64,
    /// Most requests committed in one group.
    pub batch_max: usize,
    /// Most concurrent connections.
    pub max_connections: u32,
    /// Cap on the database size in MiB (0: only the disk limits it). Past it, sends are
    /// refused as on a full disk, and acknowledged items free space for new ones.
    pub max_db_mib: u64,
    /// The Secretariat's directory key as a C2SP verifier key (`<origin>+<key id>+<key>`):
    /// the only key whose checkpoints this relay stores. Empty: no directory, nobody is
    /// admitted.
    pub directory: String,
    /// Most keys waiting at once for the Secretariat to list them.
    pub max_registrations: u64,
    /// Most statements one key may have waiting for the Secretariat.
    pub max_submissions_per_author: u64,
    /// Days a registration or a submitted statement waits before it is dropped.
    pub waiting_days: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:4433".into(),
            max_envelope_bytes: 1024 * 1024,
            max_alert_bytes: 2 * 1024 * 1024,
            max_attachment_bytes: 100 * 1024 * 1024,
            queue_quota: 10_000,
            rate_per_sec: 200.0,
            rate_burst: 2_000.0,
            request_rate_per_sec: 200.0,
            request_burst: 1_000.0,
            unenrolled_rate_per_sec: 20.0,
            max_unenrolled_connections: 256,
            max_unenrolled_per_address: 32,
            unenrolled_lifetime_secs: 30,
            max_watchers_per_key: 4,
            max_inflight_per_stream: 256,
            upload_quota_mib: 1024,
            max_blob_mib: 50 * 1024,
            ttl_secs: 30 * 24 * 3600,
            sweep_interval_secs: 60,
            batch_max: 1024,
            max_connections: 10_000,
            max_db_mib: 0,
            directory: String::new(),
            max_registrations: 1_000,
            max_submissions_per_author: 64,
            waiting_days: 30,
        }
    }
}

impl Config {
    /// Reads `relay.toml` (defaults where it is silent or absent), then applies
    /// `POCNET_RELAY_<SETTING>` environment variables and `overrides` (`setting=value`).
    pub fn load(dir: &Path, overrides: &[String]) -> anyhow::Result<Self> {
        let path = dir.join("relay.toml");
        let mut table: toml::Table = match std::fs::read_to_string(&path) {
            Ok(text) => text.parse().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        };
        let known = toml::Table::try_from(Config::default())?;
        for key in known.keys() {
            if let Ok(v) = std::env::var(format!("POCNET_RELAY_{}", key.to_ascii_uppercase())) {
                table.insert(key.clone(), parse_value(&v));
            }
        }
        for o in overrides {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--set {o:?}: expected SETTING=VALUE"))?;
            if !known.contains_key(k.trim()) {
                anyhow::bail!(
                    "--set {o:?}: unknown setting; known: {}",
                    known.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            table.insert(k.trim().to_string(), parse_value(v.trim()));
        }
        Config::deserialize(table).map_err(|e| anyhow::anyhow!("relay settings: {e}"))
    }

    /// Writes `relay.toml`.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(dir.join("relay.toml"), toml::to_string_pretty(self)?)?;
        Ok(())
    }
}

/// A setting's value as TOML (number, boolean) or, failing that, a string.
fn parse_value(v: &str) -> toml::Value {
    format!("x = {v}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("x"))
        .unwrap_or_else(|| toml::Value::String(v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_then_flags() {
        let dir = std::env::temp_dir().join(format!("pocnet-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("relay.toml"),
            "queue_quota = 5\nttl_secs = 60\nbatch_max = 9\n",
        )
        .unwrap();
        // The only test touching this variable; the environment beats the file, flags beat both.
        std::env::set_var("POCNET_RELAY_BATCH_MAX", "11");
        std::env::set_var("POCNET_RELAY_TTL_SECS", "8");
        let c = Config::load(&dir, &["ttl_secs=7".into(), "listen=127.0.0.1:9".into()]).unwrap();
        std::env::remove_var("POCNET_RELAY_BATCH_MAX");
        std::env::remove_var("POCNET_RELAY_TTL_SECS");
        assert_eq!(
            (c.queue_quota, c.batch_max, c.ttl_secs, c.listen.as_str()),
            (5, 11, 7, "127.0.0.1:9")
        );
        assert_eq!(c.max_connections, Config::default().max_connections);
        assert!(Config::load(&dir, &["no_such=1".into()]).is_err());
        std::fs::write(dir.join("relay.toml"), "queue_quota = \"many\"\n").unwrap();
        assert!(
            Config::load(&dir, &[]).is_err(),
            "a wrong type is an error, not a silent default"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
