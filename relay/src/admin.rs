//! Operator actions on a relay's data directory: create it, block keys, list members.
//! They work on the database directly (SQLite allows it while the relay runs) and
//! take effect at the relay's next handshake or request.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use pocnet_crypto::{Identity, KdfParams};

use crate::config::Config;
use crate::store::{Members, SqliteStore};

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

/// Creates a data directory with a new relay identity serving the directory whose
/// Secretariat key is `directory` (a C2SP verifier key); returns the identity.
pub fn init(dir: &Path, passphrase: &[u8], directory: &str) -> anyhow::Result<Identity> {
    let directory = directory.trim();
    pocnet_crypto::note::NoteVerifier::parse_vkey(directory).map_err(|e| {
        anyhow::anyhow!(
            "--directory must be the Secretariat's verifier key as `pocnet secretariat genesis` prints it \
             (<origin>+<key id>+<key>): {e}"
        )
    })?;
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
    let mut cfg = if dir.join("relay.toml").exists() {
        Config::load(dir, &[])?
    } else {
        Config::default()
    };
    cfg.directory = directory.to_string();
    cfg.save(dir)?;
    open_store(dir)?;
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

/// Blocks at this relay the key holding `who` (a handle or a fingerprint prefix of at
/// least 8 hex digits).
pub fn revoke(dir: &Path, who: &str) -> anyhow::Result<String> {
    let store = open_store(dir)?;
    match block_on(store.revoke(who.to_string(), now_ms()))? {
        Ok(m) => Ok(format!("{} {}", m.member.handle, m.fingerprint)),
        Err(0) => bail!("no active member matches {who:?}; list members with `pocnet-relay members`"),
        Err(n) => bail!("{who:?} matches {n} members; give more of the fingerprint"),
    }
}

/// Members for listing: (handle, name, fingerprint, revoked).
pub fn members(dir: &Path) -> anyhow::Result<Vec<(String, String, String, bool)>> {
    let store = open_store(dir)?;
    Ok(block_on(store.members())?
        .into_iter()
        .map(|m| (m.member.handle, m.member.name, m.fingerprint, m.member.revoked))
        .collect())
}

/// Opens the data directory's store (creating or migrating the database).
pub fn open_store(dir: &Path) -> anyhow::Result<SqliteStore> {
    let db = DataDir(dir.to_path_buf()).db();
    SqliteStore::open(&db, 64, u64::MAX, None).with_context(|| format!("cannot open {}", db.display()))
}

/// Runs one store call from the synchronous admin commands, on a thread of its own so it
/// works whether or not the caller is inside an async runtime (tools and tests call these).
fn block_on<T: Send>(f: impl std::future::Future<Output = T> + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a current-thread runtime")
                .block_on(f)
        })
        .join()
        .expect("admin store call panicked")
    })
}
