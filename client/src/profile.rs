//! A profile: one directory per identity, holding the encrypted key file, the relay
//! pin and the local store.

use std::path::{Path, PathBuf};

use pocnet_crypto::{Fingerprint, Identity, IdentityKey, KdfParams};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, IoContext, Result};

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
    /// The directory this profile trusts: the Secretariat's C2SP verifier key
    /// (`<origin>+<key id>+<key>`), as the Secretariat gave it.
    pub directory: Option<String>,
    /// The Secretariat's recurring contact check, if it set one.
    pub round_schedule: Option<RoundSchedule>,
}

/// A recurring contact verification round (all POCs), started by `pocnet round due`
/// (from cron or a systemd timer) whenever the last one is this old.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RoundSchedule {
    /// Days between rounds.
    pub every_days: u32,
    /// Hours each round leaves for answers.
    pub deadline_hours: f64,
    /// Reminders, as fractions of the window.
    pub reminders: Vec<f64>,
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
pub fn passphrase(file: Option<&Path>, confirm: bool) -> Result<Zeroizing<String>> {
    let from_file = |f: &Path| -> Result<Zeroizing<String>> {
        let text =
            Zeroizing::new(std::fs::read_to_string(f).ctx(|| format!("cannot read passphrase file {}", f.display()))?);
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
    let p = Zeroizing::new(
        rpassword::prompt_password("Passphrase for your pocnet key: ").map_err(|_| {
            Error::Passphrase(
                "no passphrase available: set POCNET_PASSPHRASE or POCNET_PASSPHRASE_FILE, or run in a terminal",
            )
        })?,
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("Repeat passphrase: ")
                .map_err(|_| Error::Passphrase("no passphrase repeated"))?,
        );
        if *p != *again {
            return Err(Error::Passphrase("the passphrases differ; nothing was written"));
        }
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
    pub fn create(dir: &Path, passphrase: &[u8], params: KdfParams) -> Result<(Profile, Identity)> {
        if dir.join("identity.key").exists() {
            return Err(Error::ProfileExists(dir.to_path_buf()));
        }
        if passphrase.len() < 8 {
            return Err(Error::Passphrase("choose a passphrase of at least 8 characters"));
        }
        private_dir(dir)?;
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
    pub fn open(dir: &Path) -> Result<Profile> {
        let cfg = dir.join("profile.toml");
        let text = match std::fs::read_to_string(&cfg) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NoProfile(dir.to_path_buf())),
            Err(e) => return Err(e).ctx(|| format!("cannot read {}", cfg.display())),
        };
        let config = toml::from_str(&text).map_err(|e| Error::DamagedProfile {
            path: cfg.clone(),
            reason: e.to_string(),
        })?;
        tighten(dir)?;
        Ok(Profile {
            dir: dir.to_path_buf(),
            config,
        })
    }

    /// Writes `profile.toml`.
    pub fn save(&self) -> Result<()> {
        let text = toml::to_string_pretty(&self.config).map_err(|e| Error::DamagedProfile {
            path: self.dir.join("profile.toml"),
            reason: e.to_string(),
        })?;
        write_private(&self.dir.join("profile.toml"), text.as_bytes())
    }

    /// Decrypts the identity.
    pub fn unlock(&self, passphrase: &[u8]) -> Result<Identity> {
        let bytes = std::fs::read(self.key_file()).ctx(|| format!("cannot read {}", self.key_file().display()))?;
        Identity::from_key_file(&bytes, passphrase).map_err(|e| match e {
            pocnet_crypto::Error::WrongPassphrase => Error::WrongPassphrase(self.key_file()),
            source => Error::DamagedKeyFile {
                path: self.key_file(),
                source,
            },
        })
    }

    /// The pinned relay, or an error telling the user to enrol.
    pub fn relay(&self) -> Result<&RelayPin> {
        self.config.relay.as_ref().ok_or(Error::NotEnrolledHere)
    }

    /// The pinned relay's identity key (to check its signed acceptances).
    pub fn relay_key(&self) -> Option<IdentityKey> {
        let k = pocnet_crypto::from_hex(self.config.relay.as_ref()?.key.as_ref()?)?;
        IdentityKey::from_bytes(&k.try_into().ok()?).ok()
    }

    /// The pinned fingerprint.
    pub fn relay_fingerprint(&self) -> Result<Fingerprint> {
        Fingerprint::parse(&self.relay()?.fingerprint).map_err(|e| Error::DamagedProfile {
            path: self.dir.join("profile.toml"),
            reason: format!("relay fingerprint: {e}"),
        })
    }
}

/// Creates `dir` (and parents) if needed and makes it owner-only (0700).
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ctx(|| format!("cannot create {}", dir.display()))?;
    let mode = std::fs::metadata(dir)
        .ctx(|| format!("cannot read {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .ctx(|| format!("cannot make {} private", dir.display()))?;
    }
    Ok(())
}

/// Makes the profile directory 0700 and everything in it 0600 (directories 0700),
/// whatever an earlier release, a copy or a umask left behind.
pub fn tighten(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    private_dir(dir)?;
    let entries = std::fs::read_dir(dir).ctx(|| format!("cannot list {}", dir.display()))?;
    for e in entries {
        let e = e.ctx(|| format!("cannot list {}", dir.display()))?;
        let path = e.path();
        // Never follow a link out of the profile.
        let meta = std::fs::symlink_metadata(&path).ctx(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            tighten(&path)?;
        } else if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .ctx(|| format!("cannot make {} private", path.display()))?;
        }
    }
    Ok(())
}

/// Writes a file only its owner can read, atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .ctx(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)
        .ctx(|| format!("cannot write {} (disk full?)", tmp.display()))?;
    f.sync_all()
        .ctx(|| format!("cannot write {} (disk full?)", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
