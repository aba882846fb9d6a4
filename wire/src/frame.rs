//! Framing: `u32 big-endian length || postcard-encoded value`, with strict decoding
//! (no trailing bytes) and a hard size limit checked before any allocation.

use serde::{de::DeserializeOwned, Serialize};
use thiserror::Error;

/// Largest frame body: a 1 MiB envelope plus room for the request around it.
pub const MAX_FRAME: usize = 1024 * 1024 + 64 * 1024;

/// Why a frame was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// The declared length exceeds the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// The body does not decode as the expected message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The body decoded but bytes were left over.
    #[error("malformed frame: {0} trailing bytes")]
    Trailing(usize),
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame")]
    Truncated,
}

/// Encodes one value as a length-prefixed frame.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let body = postcard::to_stdvec(value).expect("in-memory serialisation cannot fail");
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decodes a frame body (without its length prefix), strictly.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge {
            len: body.len(),
            max: MAX_FRAME,
        });
    }
    let (v, rest) = postcard::take_from_bytes(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Trailing(rest.len()));
    }
    Ok(v)
}

/// Sans-IO incremental decoder: push bytes as they arrive, pop whole frames.
pub struct FrameDecoder {
    buf: Vec<u8>,
    max: usize,
}

impl FrameDecoder {
    /// A decoder refusing frames larger than `max`.
    pub fn new(max: usize) -> Self {
        FrameDecoder { buf: Vec::new(), max }
    }
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
    /// The next complete frame body, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes(self.buf[..4].try_into().expect("4 bytes")) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let body = self.buf[4..4 + len].to_vec();
        self.buf.drain(..4 + len);
        Ok(Some(body))
    }
    /// Call at end of stream: an incomplete frame is an error.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated)
        }
    }
}
