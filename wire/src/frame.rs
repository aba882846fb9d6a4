//! Framing: `u32 big-endian length || postcard-encoded value`, with strict decoding
//! (no trailing bytes) and a hard size limit checked before any allocation.

use serde::{de::DeserializeOwned, Serialize};
use thiserror::Error;

/// Largest frame body: a 2 MiB alert envelope (X-Wing sealed to 1,000 POCs is about
/// 1.3 MB) plus room for the request around it (its signed plan included).
pub const MAX_FRAME: usize = 2 * 1024 * 1024 + 64 * 1024;

/// Why a frame was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
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

/// Sans-IO incremental decoder, the one both the relay and the client read streams with:
/// push bytes as they arrive, pop whole frames. A declared length is checked against the
/// limit before anything is reserved for it, and the buffer holds at most one frame plus
/// what arrived with it.
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    max: usize,
}

impl FrameDecoder {
    /// A decoder refusing frames larger than `max`.
    pub fn new(max: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            max,
        }
    }
    /// Changes the limit (a connection's limit rises once its key is known to be enrolled).
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }
    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }
    /// The length the next frame declares, checked against the limit, once its prefix is here.
    pub fn pending_len(&self) -> Result<Option<usize>, FrameError> {
        let avail = &self.buf[self.start..];
        if avail.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes(avail[..4].try_into().expect("4 bytes")) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        Ok(Some(len))
    }
    /// The next complete frame body, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let Some(len) = self.pending_len()? else {
            return Ok(None);
        };
        if self.buffered() < 4 + len {
            return Ok(None);
        }
        let from = self.start + 4;
        self.start = from + len;
        Ok(Some(&self.buf[from..from + len]))
    }
    /// The next complete frame, decoded strictly as `T`.
    pub fn decode_next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        match self.next_frame()? {
            None => Ok(None),
            Some(body) => decode(body).map(Some),
        }
    }
    /// Takes the bytes buffered past the last frame (raw data that follows a frame).
    pub fn take_rest(&mut self) -> Vec<u8> {
        let rest = self.buf[self.start..].to_vec();
        self.buf.clear();
        self.start = 0;
        rest
    }
    /// Call at end of stream: an incomplete frame is an error.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buffered() == 0 {
            Ok(())
        } else {
            Err(FrameError::Truncated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_decode_the_same() {
        let values: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; i as usize * 37]).collect();
        let bytes: Vec<u8> = values.iter().flat_map(encode).collect();
        for step in [1, 3, 7, 64, 1000, bytes.len()] {
            let mut d = FrameDecoder::new(MAX_FRAME);
            let mut got = Vec::new();
            for chunk in bytes.chunks(step) {
                d.push(chunk);
                while let Some(v) = d.decode_next::<Vec<u8>>().unwrap() {
                    got.push(v);
                }
            }
            d.finish().unwrap();
            assert_eq!(got, values, "step {step}");
        }
    }

    #[test]
    fn oversize_declared_length_is_refused_before_the_body_arrives() {
        let mut d = FrameDecoder::new(100);
        d.push(&101u32.to_be_bytes());
        assert_eq!(d.next_frame().unwrap_err(), FrameError::TooLarge { len: 101, max: 100 });
        let mut d = FrameDecoder::new(100);
        d.push(&[0, 0, 0, 5, 1, 2]);
        assert!(d.next_frame().unwrap().is_none());
        assert_eq!(d.finish(), Err(FrameError::Truncated));
    }
}
