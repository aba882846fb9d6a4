//! A profile: one directory per identity, holding the encrypted key file, the relay
//! pin and the local store.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use pocnet_crypto::{Fingerprint, Identity, IdentityKey, KdfParams};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Where the relay is and which key it must present.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RelayPin {
    /// `HOST:PORT`.
    pub address: String,
    /// The relay key's fingerprint (hex).
    pub fingerprint: String,
    /// The relay's identity key (hex), learned at enrolment from the pinned handshake.
    pub key: Option<String>,
}

/// `profile.toml`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProfileConfig {
    /// The relay, once enrolled.
    pub relay: Option<RelayPin>,
    /// Our handle, once enrolled.
    pub handle: Option<String>,
}

/// An opened profile directory.
pub struct Profile {
    /// The directory.
    pub dir: PathBuf,
    /// Its configuration.
    pub config: ProfileConfig,
}

/// The default profile directory: `$XDG_DATA_HOME/pocnet` or `~/.local/share/pocnet`.
pub fn default_home() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(x).join("pocnet");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/pocnet")
}

/// Where the passphrase comes from, in order: a file, `POCNET_PASSPHRASE`,
/// `POCNET_PASSPHRASE_FILE`, an interactive prompt. Never a command-line argument.
pub fn passphrase(file: Option<&Path>, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    let from_file = |f: &Path| -> anyhow::Result<Zeroizing<String>> {
        let text = Zeroizing::new(
            std::fs::read_to_string(f).with_context(|| format!("cannot read passphrase file {}", f.display()))?,
        );
        Ok(Zeroizing::new(text.lines().next().unwrap_or("").to_string()))
    };
    if let Some(f) = file {
        return from_file(f);
    }
    if let Ok(p) = std::env::var("POCNET_PASSPHRASE") {
        return Ok(Zeroizing::new(p));
    }
    if let Some(f) = std::env::var_os("POCNET_PASSPHRASE_FILE") {
        return from_file(Path::new(&f));
    }
    let p =
        Zeroizing::new(rpassword::prompt_password("Passphrase for your pocnet key: ").context(
            "no passphrase available: set POCNET_PASSPHRASE or POCNET_PASSPHRASE_FILE, or run in a terminal",
        )?);
    if confirm && *p != *Zeroizing::new(rpassword::prompt_password("Repeat passphrase: ")?) {
        bail!("the passphrases differ; nothing was written");
    }
    Ok(p)
}

impl Profile {
    /// The encrypted identity.
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("identity.key")
    }
    /// The local store.
    pub fn db_path(&self) -> PathBuf {
        self.dir.join("client.db")
    }
    /// Received attachments.
    pub fn attachments(&self) -> PathBuf {
        self.dir.join("attachments")
    }
    /// Scratch space for sealing and downloading.
    pub fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// Creates a new profile with a fresh identity.
    pub fn create(dir: &Path, passphrase: &[u8], params: KdfParams) -> anyhow::Result<(Profile, Identity)> {
        if dir.join("identity.key").exists() {
            bail!(
                "{} already holds an identity; use another --home, or remove it deliberately",
                dir.display()
            );
        }
        if passphrase.len() < 8 {
            bail!("choose a passphrase of at least 8 characters");
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let now = crate::now_ms() / 1000;
        let id = Identity::generate(&mut pocnet_crypto::os_rng(), now, crate::ENCRYPTION_KEY_VALIDITY_SECS)?;
        let file = id.to_key_file(&mut pocnet_crypto::os_rng(), passphrase, params)?;
        write_private(&dir.join("identity.key"), &file)?;
        let p = Profile {
            dir: dir.to_path_buf(),
            config: ProfileConfig::default(),
        };
        p.save()?;
        Ok((p, id))
    }

    /// Opens an existing profile.
    pub fn open(dir: &Path) -> anyhow::Result<Profile> {
        let cfg = dir.join("profile.toml");
        let text = std::fs::read_to_string(&cfg).with_context(|| {
            format!(
                "no pocnet profile in {}: run `pocnet init` (or pass --home / set POCNET_HOME)",
                dir.display()
            )
        })?;
        let config = toml::from_str(&text).with_context(|| format!("{} is damaged", cfg.display()))?;
        Ok(Profile {
            dir: dir.to_path_buf(),
            config,
        })
    }

    /// Writes `profile.toml`.
    pub fn save(&self) -> anyhow::Result<()> {
        write_private(
            &self.dir.join("profile.toml"),
            toml::to_string_pretty(&self.config)?.as_bytes(),
        )
    }

    /// Decrypts the identity.
    pub fn unlock(&self, passphrase: &[u8]) -> anyhow::Result<Identity> {
        let bytes =
            std::fs::read(self.key_file()).with_context(|| format!("cannot read {}", self.key_file().display()))?;
        Identity::from_key_file(&bytes, passphrase).map_err(|e| match e {
            pocnet_crypto::Error::WrongPassphrase => {
                anyhow::anyhow!("wrong passphrase for {}", self.key_file().display())
            }
            other => anyhow::anyhow!("cannot unlock {}: {other}", self.key_file().display()),
        })
    }

    /// The pinned relay, or an error telling the user to enrol.
    pub fn relay(&self) -> anyhow::Result<&RelayPin> {
        self.config.relay.as_ref().context("this profile is not enrolled yet: run `pocnet enrol --relay HOST:PORT --relay-key FINGERPRINT --invite CODE`")
    }

    /// The pinned relay's identity key (to check its signed acceptances).
    pub fn relay_key(&self) -> Option<IdentityKey> {
        let k = pocnet_crypto::from_hex(self.config.relay.as_ref()?.key.as_ref()?)?;
        IdentityKey::from_bytes(&k.try_into().ok()?).ok()
    }

    /// The pinned fingerprint.
    pub fn relay_fingerprint(&self) -> anyhow::Result<Fingerprint> {
        Ok(Fingerprint::parse(&self.relay()?.fingerprint)?)
    }
}

/// Writes a file only its owner can read, atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {} (disk full?)", tmp.display()))?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
