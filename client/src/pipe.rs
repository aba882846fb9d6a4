//! The client half of a pipelined session stream (PROTOCOL.md §8): one long-lived QUIC
//! stream opened with `Request::Pipeline`, on which any number of tasks may have requests
//! in flight at once. Each request gets an id; answers come back tagged, in completion
//! order, and are routed to their callers. Frames are read with the same
//! [`FrameDecoder`] the relay uses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pocnet_wire::{encode, FrameDecoder, FrameError, Request, Response, Tagged, MAX_FRAME};
use tokio::sync::{mpsc, oneshot};

/// Why a pipelined call got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PipeError {
    /// The connection or the session stream ended before the answer.
    #[error("the relay connection was lost before it answered: {0}")]
    Lost(String),
    /// The relay sent something that is not a tagged answer.
    #[error("the relay sent a malformed answer: {0}")]
    Frame(FrameError),
}

type Waiters = Arc<Mutex<Option<HashMap<u32, oneshot::Sender<Result<Response, PipeError>>>>>>;

/// A pipelined session stream; cheap to clone, usable from many tasks at once.
#[derive(Clone)]
pub struct Pipe {
    tx: mpsc::UnboundedSender<(Request, oneshot::Sender<Result<Response, PipeError>>)>,
}

impl Pipe {
    /// Opens the session stream on `conn`.
    pub async fn open(conn: &quinn::Connection) -> Result<Pipe, quinn::ConnectionError> {
        let (mut send, mut recv) = conn.open_bi().await?;
        let waiters: Waiters = Arc::new(Mutex::new(Some(HashMap::new())));
        let (tx, mut rx) = mpsc::unbounded_channel::<(Request, oneshot::Sender<Result<Response, PipeError>>)>();
        let w = waiters.clone();
        tokio::spawn(async move {
            let mut next_id: u32 = 0;
            let mut buf = encode(&Request::Pipeline);
            while let Some(first) = rx.recv().await {
                let mut job = Some(first);
                while let Some((req, reply)) = job.take() {
                    // u32::MAX is the relay's "cannot tell which request" id.
                    let id = next_id;
                    next_id = next_id.wrapping_add(1) % u32::MAX;
                    match w.lock().expect("waiters").as_mut() {
                        Some(map) => {
                            map.insert(id, reply);
                        }
                        None => {
                            let _ = reply.send(Err(PipeError::Lost("session closed".into())));
                            continue;
                        }
                    }
                    buf.extend_from_slice(&encode(&Tagged { id, body: req }));
                    if buf.len() < 256 * 1024 {
                        job = rx.try_recv().ok();
                    }
                }
                if let Err(e) = send.write_all(&buf).await {
                    fail_all(&w, PipeError::Lost(e.to_string()));
                    return;
                }
                buf.clear();
            }
            let _ = send.finish();
        });
        let w = waiters;
        tokio::spawn(async move {
            let mut dec = FrameDecoder::new(MAX_FRAME);
            loop {
                loop {
                    match dec.decode_next::<Tagged<Response>>() {
                        Ok(Some(t)) => {
                            if t.id == u32::MAX {
                                let why = match t.body {
                                    Response::Error { message, .. } => message,
                                    other => format!("{other:?}"),
                                };
                                fail_all(&w, PipeError::Lost(why));
                                return;
                            }
                            let waiter = w.lock().expect("waiters").as_mut().and_then(|m| m.remove(&t.id));
                            if let Some(waiter) = waiter {
                                let _ = waiter.send(Ok(t.body));
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            fail_all(&w, PipeError::Frame(e));
                            return;
                        }
                    }
                }
                match recv.read_chunk(64 * 1024, true).await {
                    Ok(Some(chunk)) => dec.push(&chunk.bytes),
                    Ok(None) => {
                        fail_all(&w, PipeError::Lost("the relay ended the session stream".into()));
                        return;
                    }
                    Err(e) => {
                        fail_all(&w, PipeError::Lost(e.to_string()));
                        return;
                    }
                }
            }
        });
        Ok(Pipe { tx })
    }

    /// Sends one request and waits for its answer (relay errors are answers too).
    pub async fn call(&self, req: Request) -> Result<Response, PipeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((req, reply))
            .map_err(|_| PipeError::Lost("session closed".into()))?;
        rx.await.map_err(|_| PipeError::Lost("session closed".into()))?
    }
}

fn fail_all(w: &Waiters, e: PipeError) {
    if let Some(map) = w.lock().expect("waiters").take() {
        for (_, waiter) in map {
            let _ = waiter.send(Err(e.clone()));
        }
    }
}
