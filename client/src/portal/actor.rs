//! The client thread. [`crate::app::Client`] owns a SQLite connection and a QUIC session
//! whose futures are not `Send`, while axum's handlers must be: so one thread owns the
//! client (a current-thread runtime with a `LocalSet`), keeps it in sync with the relay,
//! and runs the handlers' jobs one at a time on that thread. Handlers hold only a
//! [`Handle`], which is `Send + Sync`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::app::Client;
use crate::error::{Error, Result};
use crate::net::Session;

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;
type Job = Box<dyn FnOnce(Rc<Ctx>) -> LocalFuture + Send>;

/// What a job sees: the unlocked client and, when the relay answers, a live session.
pub struct Ctx {
    /// The unlocked profile.
    pub client: Client,
    session: RefCell<Option<Rc<Session>>>,
    changes: watch::Sender<u64>,
}

impl Ctx {
    /// The live session, or a fresh one if the sync loop is between connections.
    pub async fn session(&self) -> Result<Rc<Session>> {
        if let Some(s) = self.session.borrow().clone() {
            return Ok(s);
        }
        let s = Rc::new(self.client.connect().await?);
        Ok(s)
    }

    /// The sync loop's session if it holds one now (never waits to connect).
    pub fn live_session(&self) -> Option<Rc<Session>> {
        self.session.borrow().clone()
    }

    /// Brings the verified log up to date (a consistency proof) when the relay answers;
    /// offline, pages show the log as last verified.
    pub async fn refresh_directory(&self) {
        if let Some(s) = self.live_session() {
            if let Err(e) = self.client.sync_directory(&s).await {
                tracing::warn!("portal: directory not brought up to date: {e}");
            }
        }
    }

    /// Tells every open live page that something changed here.
    pub fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The handlers' way to the client thread.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Job>,
    changes: watch::Receiver<u64>,
    online: watch::Receiver<bool>,
}

impl Handle {
    /// Runs `f` on the client thread and returns its result.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Rc<Ctx>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + 'static,
        T: Send + 'static,
    {
        let (otx, orx) = oneshot::channel();
        let job: Job = Box::new(move |ctx| {
            Box::pin(async move {
                let _ = otx.send(f(ctx).await);
            })
        });
        self.tx
            .send(job)
            .map_err(|_| Error::Protocol("the portal's client thread has stopped".into()))?;
        orx.await
            .map_err(|_| Error::Protocol("the portal's client thread dropped a request".into()))?
    }

    /// A receiver that changes whenever a delivery was stored or a job changed something.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// Whether the sync loop holds a live relay session.
    pub fn online(&self) -> bool {
        *self.online.borrow()
    }
}

/// Starts the client thread. `ready` is told once the first sync has caught up (or the
/// first connection failed, in which case the portal serves the store as it is).
pub fn spawn(client: Client) -> (Handle, oneshot::Receiver<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
    let (ctx_tx, changes_rx) = watch::channel(0u64);
    let (online_tx, online_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("pocnet-portal-client".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("portal: cannot start the client thread's runtime: {e}");
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            let ctx = Rc::new(Ctx {
                client,
                session: RefCell::new(None),
                changes: ctx_tx,
            });
            local.block_on(&rt, async move {
                tokio::task::spawn_local(sync_loop(ctx.clone(), online_tx, ready_tx));
                while let Some(job) = rx.recv().await {
                    tokio::task::spawn_local(job(ctx.clone()));
                }
            });
        })
        .expect("spawn the portal's client thread");
    (
        Handle {
            tx,
            changes: changes_rx,
            online: online_rx,
        },
        ready_rx,
    )
}

/// Keeps one session open and watching, like `pocnet watch`: every stored delivery
/// (messages, alerts, receipts) wakes the live pages. Reconnects with a growing pause.
async fn sync_loop(ctx: Rc<Ctx>, online: watch::Sender<bool>, ready: oneshot::Sender<()>) {
    let mut ready = Some(ready);
    let mut pause = Duration::from_millis(500);
    loop {
        match ctx.client.connect().await {
            Ok(s) => {
                pause = Duration::from_millis(500);
                let s = Rc::new(s);
                *ctx.session.borrow_mut() = Some(s.clone());
                let _ = online.send(true);
                if let Err(e) = ctx.client.sync_directory(&s).await {
                    tracing::warn!("portal: directory not brought up to date: {e}");
                }
                if let Err(e) = ctx.client.flush_outbox(&s).await {
                    tracing::warn!("portal: acknowledgements still waiting: {e}");
                }
                let c2 = ctx.clone();
                let r = ctx
                    .client
                    .sync_events(
                        &s,
                        |_, _| {},
                        || {
                            if let Some(r) = ready.take() {
                                let _ = r.send(());
                            }
                            c2.changed();
                        },
                        || c2.changed(),
                    )
                    .await;
                *ctx.session.borrow_mut() = None;
                let _ = online.send(false);
                if let Err(e) = r {
                    tracing::warn!("portal: relay session ended: {e}");
                }
            }
            Err(e) => {
                tracing::warn!("portal: relay unreachable, serving the local store: {e}");
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}
