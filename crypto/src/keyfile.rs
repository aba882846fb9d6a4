//! Secret keys at rest: the identity's secret bytes encrypted under a passphrase.
//!
//! Argon2id (RFC 9106) derives a key-encryption key from the passphrase and a random
//! salt; XChaCha20-Poly1305 seals the secret with the file header as associated data;
//! a SHA-256 checksum over the whole file tells corruption apart from a wrong passphrase.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::identity::Identity;

const MAGIC: &[u8; 7] = b"pocnetk";
const KEYFILE_VERSION: u8 = 1;
const KDF_ARGON2ID_13: u8 = 1;
const CHECKSUM_LEN: usize = 32;
/// Largest secret payload a key file may carry.
const MAX_SECRET_LEN: usize = 64 * 1024;

/// Argon2id cost parameters, stored in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// The default: 64 MiB, 3 passes, 1 lane (RFC 9106's second recommended option
    /// scaled to a laptop; about a quarter of a second here).
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };
    /// Upper bounds accepted when reading a file, so a hostile file cannot demand 4 TiB.
    const MAX: KdfParams = KdfParams {
        m_cost_kib: 4 * 1024 * 1024,
        t_cost: 64,
        p_cost: 16,
    };
    /// Lower bounds accepted when reading or writing (tests may go this low; never below).
    const MIN: KdfParams = KdfParams {
        m_cost_kib: 8 * 1024,
        t_cost: 1,
        p_cost: 1,
    };

    fn check(&self) -> Result<()> {
        let ok = |v: u32, lo: u32, hi: u32| (lo..=hi).contains(&v);
        if ok(self.m_cost_kib, Self::MIN.m_cost_kib, Self::MAX.m_cost_kib)
            && ok(self.t_cost, Self::MIN.t_cost, Self::MAX.t_cost)
            && ok(self.p_cost, Self::MIN.p_cost, Self::MAX.p_cost)
        {
            Ok(())
        } else {
            Err(Error::Kdf(format!(
                "Argon2id parameters {self:?} are outside the accepted range"
            )))
        }
    }

    fn derive(&self, passphrase: &[u8], salt: &[u8; 16]) -> Result<Zeroizing<[u8; 32]>> {
        self.check()?;
        let params =
            Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32)).map_err(|e| Error::Kdf(e.to_string()))?;
        let mut kek = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase, salt, kek.as_mut())
            .map_err(|e| Error::Kdf(e.to_string()))?;
        Ok(kek)
    }
}

/// Encrypts `secret` under `passphrase`.
pub fn seal_secret<R: CryptoRng>(rng: &mut R, secret: &[u8], passphrase: &[u8], params: KdfParams) -> Result<Vec<u8>> {
    if secret.len() > MAX_SECRET_LEN {
        return Err(Error::TooLarge {
            field: "key file secret",
            len: secret.len() as u64,
            max: MAX_SECRET_LEN as u64,
        });
    }
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut nonce);
    let kek = params.derive(passphrase, &salt)?;
    let mut w = Writer::with_capacity(80 + secret.len() + 16 + CHECKSUM_LEN);
    w.bytes(MAGIC)
        .u8(KEYFILE_VERSION)
        .u8(KDF_ARGON2ID_13)
        .u32(params.m_cost_kib)
        .u32(params.t_cost)
        .u32(params.p_cost)
        .bytes(&salt)
        .bytes(&nonce)
        .u32((secret.len() + 16) as u32);
    let aead = XChaCha20Poly1305::new(&(*kek).into());
    let ct = aead
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: secret,
                aad: &w.buf,
            },
        )
        .map_err(|_| Error::Kdf("encryption failed".into()))?;
    w.bytes(&ct);
    let sum = Sha256::digest(&w.buf);
    w.bytes(&sum);
    Ok(w.into_vec())
}

/// Decrypts a key file; tells a wrong passphrase from a damaged file.
pub fn open_secret(file: &[u8], passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if file.len() < MAGIC.len() || &file[..MAGIC.len()] != MAGIC {
        return Err(Error::BadMagic("pocnet key file"));
    }
    if file.len() < CHECKSUM_LEN + MAGIC.len() + 1 {
        return Err(Error::KeyFileCorrupted);
    }
    let (body, sum) = file.split_at(file.len() - CHECKSUM_LEN);
    if Sha256::digest(body).as_slice() != sum {
        return Err(Error::KeyFileCorrupted);
    }
    let mut r = Reader::new(body, "key file");
    r.take(MAGIC.len())?;
    let v = r.u8()?;
    if v != KEYFILE_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "key file",
            found: v,
        });
    }
    if r.u8()? != KDF_ARGON2ID_13 {
        return Err(Error::Kdf("unknown key-derivation function".into()));
    }
    let params = KdfParams {
        m_cost_kib: r.u32()?,
        t_cost: r.u32()?,
        p_cost: r.u32()?,
    };
    let salt: [u8; 16] = r.array()?;
    let nonce: [u8; 24] = r.array()?;
    let ct_len = r.u32()? as usize;
    if ct_len > MAX_SECRET_LEN + 16 {
        return Err(Error::TooLarge {
            field: "key file secret",
            len: ct_len as u64,
            max: MAX_SECRET_LEN as u64,
        });
    }
    let aad_len = r.position();
    let ct = r.take(ct_len)?;
    r.finish()?;
    let kek = params.derive(passphrase, &salt)?;
    let aead = XChaCha20Poly1305::new(&(*kek).into());
    let pt = aead
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: ct,
                aad: &body[..aad_len],
            },
        )
        .map_err(|_| Error::WrongPassphrase)?;
    Ok(Zeroizing::new(pt))
}

impl Identity {
    /// The identity as an encrypted key file.
    pub fn to_key_file<R: CryptoRng>(&self, rng: &mut R, passphrase: &[u8], params: KdfParams) -> Result<Vec<u8>> {
        seal_secret(rng, &self.to_secret_bytes(), passphrase, params)
    }
    /// Loads an identity from an encrypted key file.
    pub fn from_key_file(file: &[u8], passphrase: &[u8]) -> Result<Self> {
        Identity::from_secret_bytes(&open_secret(file, passphrase)?)
    }
}
