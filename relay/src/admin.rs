//! Operator actions on a relay's data directory: create it, issue invites, revoke keys.
//! They work on the database directly (SQLite allows it while the relay runs) and
//! take effect at the relay's next handshake or request.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use pocnet_crypto::{Identity, KdfParams};
use rusqlite::{params, OptionalExtension};

use crate::config::Config;
use crate::store::{invite_hash, open_db};

/// Files in a relay data directory.
pub struct DataDir(pub PathBuf);

impl DataDir {
    /// The relay's encrypted identity key.
    pub fn key_file(&self) -> PathBuf {
        self.0.join("relay.key")
    }
    /// The SQLite database.
    pub fn db(&self) -> PathBuf {
        self.0.join("relay.db")
    }
    /// Attachment files.
    pub fn blobs(&self) -> PathBuf {
        self.0.join("blobs")
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Creates a data directory with a new relay identity; returns the identity.
pub fn init(dir: &Path, passphrase: &[u8]) -> anyhow::Result<Identity> {
    let d = DataDir(dir.to_path_buf());
    if d.key_file().exists() {
        bail!(
            "{} already holds a relay identity; use a new directory or `serve` this one",
            dir.display()
        );
    }
    std::fs::create_dir_all(d.blobs()).with_context(|| format!("cannot create {}", dir.display()))?;
    let now = now_ms() / 1000;
    let id = Identity::generate(&mut pocnet_crypto::os_rng(), now, 10 * 365 * 86400)?;
    let file = id.to_key_file(&mut pocnet_crypto::os_rng(), passphrase, KdfParams::DEFAULT)?;
    write_private(&d.key_file(), &file)?;
    if !dir.join("relay.toml").exists() {
        Config::default().save(dir)?;
    }
    open_db(&d.db())?;
    Ok(id)
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Loads the relay identity.
pub fn load_identity(dir: &Path, passphrase: &[u8]) -> anyhow::Result<Identity> {
    let d = DataDir(dir.to_path_buf());
    let bytes = std::fs::read(d.key_file()).with_context(|| {
        format!(
            "no relay identity in {}: run `pocnet-relay init --data {}` first",
            dir.display(),
            dir.display()
        )
    })?;
    Identity::from_key_file(&bytes, passphrase)
        .map_err(|e| anyhow::anyhow!("cannot unlock {}: {e}", d.key_file().display()))
}

/// Checks an ISO 3166-1 alpha-2 code's form (two ASCII capitals).
pub fn valid_state(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// Roles a POC may hold.
pub const ROLES: &[&str] = &["primary", "alternate", "further"];

/// Issues a one-time invite; returns the code to hand to the POC.
pub fn invite(dir: &Path, state: &str, role: &str, name: &str, ttl_secs: u64) -> anyhow::Result<String> {
    let state = state.trim().to_ascii_uppercase();
    if !valid_state(&state) {
        bail!("--state must be an ISO 3166-1 alpha-2 code such as CL, MX or US (got {state:?})");
    }
    if !ROLES.contains(&role) {
        bail!("--role must be one of {} (got {role:?})", ROLES.join(", "));
    }
    let db = DataDir(dir.to_path_buf()).db();
    if !db.exists() {
        bail!(
            "{} is not a relay data directory: run `pocnet-relay init --data {}` first",
            dir.display(),
            dir.display()
        );
    }
    let conn = open_db(&db)?;
    let mut raw = [0u8; 15];
    pocnet_crypto::rand_core::Rng::fill_bytes(&mut pocnet_crypto::os_rng(), &mut raw);
    let hex = pocnet_crypto::to_hex(&raw);
    let code = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..6],
        &hex[6..12],
        &hex[12..18],
        &hex[18..24],
        &hex[24..30]
    );
    let now = now_ms();
    conn.execute(
        "INSERT INTO invites(code_hash, state, role, name, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            invite_hash(&code),
            state,
            role,
            name,
            now as i64,
            (now + ttl_secs * 1000) as i64
        ],
    )?;
    Ok(code)
}

/// Revokes the key holding `who` (a handle or a fingerprint prefix of at least 8 hex digits).
pub fn revoke(dir: &Path, who: &str) -> anyhow::Result<String> {
    let conn = open_db(&DataDir(dir.to_path_buf()).db())?;
    let matches: Vec<(Vec<u8>, String, String)> = {
        let mut stmt = conn.prepare("SELECT key, handle, fingerprint FROM members WHERE revoked_at IS NULL AND (handle = ?1 OR (length(?2) >= 8 AND fingerprint LIKE ?2 || '%'))")?;
        let rows = stmt.query_map(params![who, who.to_ascii_lowercase()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    match matches.as_slice() {
        [] => bail!("no active member matches {who:?}; list members with `pocnet-relay members`"),
        [(key, handle, fp)] => {
            conn.execute(
                "UPDATE members SET revoked_at = ?1 WHERE key = ?2",
                params![now_ms() as i64, key],
            )?;
            Ok(format!("{handle} {fp}"))
        }
        _ => bail!(
            "{who:?} matches {} members; give more of the fingerprint",
            matches.len()
        ),
    }
}

/// Members for listing: (handle, name, fingerprint, revoked).
pub fn members(dir: &Path) -> anyhow::Result<Vec<(String, String, String, bool)>> {
    let conn = open_db(&DataDir(dir.to_path_buf()).db())?;
    let mut stmt =
        conn.prepare("SELECT handle, name, fingerprint, revoked_at IS NOT NULL FROM members ORDER BY handle")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Whether the key is revoked (used at the handshake). Fails closed: if the database
/// cannot answer, the key is treated as revoked for this handshake.
pub fn is_revoked(conn: &rusqlite::Connection, key: &[u8; 32]) -> bool {
    match conn
        .query_row(
            "SELECT revoked_at IS NOT NULL FROM members WHERE key = ?1",
            [key.as_slice()],
            |r| r.get::<_, bool>(0),
        )
        .optional()
    {
        Ok(found) => found.unwrap_or(false),
        Err(e) => {
            tracing::error!("revocation check failed, refusing the handshake: {e}");
            true
        }
    }
}
