//! Files the client writes inside the profile: owner-only from the moment they exist.

use std::path::Path;

use crate::error::{IoContext, Result};

/// Creates (truncating) a file only its owner can read and write (0600).
pub fn create_private(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .ctx(|| format!("cannot create {}", path.display()))
}

/// As [`create_private`], for async writers.
pub async fn create_private_async(path: &Path) -> Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .await
        .ctx(|| format!("cannot create {}", path.display()))
}

/// Creates a file that must not exist yet (never overwrites), readable by its owner only.
pub fn create_new_private(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .ctx(|| format!("cannot create {}", path.display()))
}
