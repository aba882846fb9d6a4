//! The STREAM construction for envelope bodies (as in age): the plaintext is cut into
//! 64 KiB chunks, each sealed with ChaCha20-Poly1305 under the payload key and the nonce
//! `counter (11 bytes, big-endian) || last-chunk flag (1 byte)`. Reordering, swapping,
//! dropping or appending chunks changes a nonce and fails authentication.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Plaintext bytes per chunk (the last chunk may be shorter).
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Authentication tag per chunk.
pub const TAG_LEN: usize = 16;

/// Number of chunks for a body of `len` plaintext bytes (at least one, possibly empty).
pub fn chunk_count(len: u64) -> u64 {
    len.div_ceil(CHUNK_SIZE as u64).max(1)
}

/// Ciphertext length for a body of `len` plaintext bytes.
pub fn ciphertext_len(len: u64) -> u64 {
    len + chunk_count(len) * TAG_LEN as u64
}

/// Plaintext length of chunk `index` of a body of `len` bytes.
pub(crate) fn chunk_plain_len(len: u64, index: u64) -> usize {
    let start = index * CHUNK_SIZE as u64;
    (len - start).min(CHUNK_SIZE as u64) as usize
}

fn nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::from(n)
}

/// Seals or opens the chunks of one body, in order.
pub(crate) struct Stream {
    aead: ChaCha20Poly1305,
    next: u64,
    chunks: u64,
}

impl Stream {
    pub(crate) fn new(key: &Zeroizing<[u8; 32]>, body_len: u64) -> Self {
        let aead = ChaCha20Poly1305::new(&chacha20poly1305::Key::from(**key));
        Stream {
            aead,
            next: 0,
            chunks: chunk_count(body_len),
        }
    }

    /// Encrypts `buf` (one chunk of plaintext) in place and appends its tag.
    pub(crate) fn seal_chunk(&mut self, buf: &mut Vec<u8>) {
        let last = self.next + 1 == self.chunks;
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce(self.next, last), &[], buf.as_mut_slice().into())
            .expect("chunk within ChaCha20-Poly1305 limits");
        buf.extend_from_slice(&tag);
        self.next += 1;
    }

    /// Decrypts one chunk (ciphertext || tag) in place; on success `buf` holds the plaintext.
    pub(crate) fn open_chunk(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        let index = self.next;
        let last = index + 1 == self.chunks;
        if buf.len() < TAG_LEN {
            return Err(Error::ChunkCorrupted(index));
        }
        let split = buf.len() - TAG_LEN;
        let tag = Tag::try_from(&buf[split..]).map_err(|_| Error::ChunkCorrupted(index))?;
        buf.truncate(split);
        self.aead
            .decrypt_inout_detached(&nonce(index, last), &[], buf.as_mut_slice().into(), &tag)
            .map_err(|_| Error::ChunkCorrupted(index))?;
        self.next += 1;
        Ok(())
    }
}
