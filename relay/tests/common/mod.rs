//! The world the relay's socket-free tests run in: a service over a real SQLite store and a
//! clock the test drives, whose members exist only through the directory log, as in a real
//! deployment. The world's Secretariat begins the log, enrols national authorities and
//! approves their nominations with `pocnet_core`'s `Publisher`, and every change reaches
//! the relay as a `LogAppend`.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use pocnet_core::directory::{vkey, Author, Category, Contact, Publisher, Rank, Statement, WitnessKey};
use pocnet_crypto::note::{sign_note, Checkpoint, SignedNote};
use pocnet_crypto::tlog;
use pocnet_crypto::{seal, HeaderFields, Identity, Suite};
use pocnet_relay::clock::ManualClock;
use pocnet_relay::service::Service;
use pocnet_relay::store::{Log, MemberRecord, Members, SqliteStore, StoredCheckpoint};
use pocnet_relay::Config;
use pocnet_wire::{ErrorCode, Member, Request, Response};

pub const T0: u64 = 1_800_000_000_000;
pub const ORIGIN: &str = "directory.oas.example";
pub const WITNESS: &str = "witness.example";

pub type Svc = Service<SqliteStore, ManualClock>;

pub struct World {
    pub svc: Svc,
    pub clock: ManualClock,
    pub relay: Arc<Identity>,
    pub cfg: Config,
    pub dir: tempfile::TempDir,
    /// The Secretariat (the anchor the relay is configured with).
    pub sec: Identity,
    /// The one witness of the Genesis policy (quorum 1); not listed unless a test lists it.
    pub witness: Identity,
    /// The Secretariat's copy of the log.
    pub log: RefCell<Publisher>,
    pub authorities: RefCell<BTreeMap<String, Rc<Identity>>>,
    /// Statement time: every statement is 1 ms after the previous one.
    pub t: Cell<u64>,
}

/// A relay configured with a fresh Secretariat's key, whose log has not begun.
pub async fn unbegun(cfg: Config) -> World {
    let sec = id();
    let witness = id();
    let cfg = Config {
        directory: vkey(ORIGIN, sec.public_key()),
        ..cfg
    };
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let relay = Arc::new(id());
    let svc = service(&dir.path().join("relay.db"), &clock, &cfg, &relay);
    svc.load_directory().await.unwrap();
    let log = Publisher::genesis(
        &sec,
        ORIGIN,
        T0,
        vec![WitnessKey {
            name: WITNESS.into(),
            key: *witness.public_key().as_bytes(),
        }],
        1,
    )
    .unwrap();
    World {
        svc,
        clock,
        relay,
        cfg,
        dir,
        sec,
        witness,
        log: RefCell::new(log),
        authorities: RefCell::default(),
        t: Cell::new(T0),
    }
}

/// A relay whose log holds the Secretariat's Genesis, appended by the Secretariat's key
/// while it was listed nowhere (only the anchor may do that).
pub async fn world(cfg: Config) -> World {
    let w = unbegun(cfg).await;
    w.publish().await;
    w
}

pub async fn hello(svc: &Svc, who: &Identity) -> Response {
    svc.handle(
        who.public_key(),
        Request::Hello {
            protocol: pocnet_wire::PROTOCOL_VERSION,
        },
    )
    .await
}

pub fn service(path: &std::path::Path, clock: &ManualClock, cfg: &Config, relay: &Arc<Identity>) -> Svc {
    let store = SqliteStore::open(path, 64, cfg.queue_quota, None).unwrap();
    Service::new(store, clock.clone(), cfg.clone(), relay.clone())
}

pub fn id() -> Identity {
    Identity::generate(&mut pocnet_crypto::os_rng(), T0 / 1000, 365 * 86400).unwrap()
}

pub fn code(e: &Response) -> Option<ErrorCode> {
    match e {
        Response::Error { code, .. } => Some(*code),
        _ => None,
    }
}

pub fn contact(name: &str) -> Contact {
    Contact {
        name: name.into(),
        position: "Head of cyber policy".into(),
        institution: "Ministry of Foreign Affairs".into(),
        email: "poc@example.gov".into(),
        phones: vec!["+56 2 2827 4200".into()],
        languages: vec!["es".into(), "en".into()],
        time_zone: "America/Santiago".into(),
        working_hours: "09:00-18:00".into(),
    }
}

/// `primary`, `alternate`, `furtherN`, each optionally `fa-`.
pub fn role(role: &str) -> (Category, Rank) {
    let (cat, r) = match role.strip_prefix("fa-") {
        Some(r) => (Category::ForeignAffairs, r),
        None => (Category::CyberPolicy, role),
    };
    let rank = match r {
        "primary" => Rank::Primary,
        "alternate" => Rank::Alternate,
        n => Rank::Further(n.strip_prefix("further").unwrap().parse().unwrap()),
    };
    (cat, rank)
}

impl World {
    pub fn tick(&self) -> u64 {
        let t = self.t.get() + 1;
        self.t.set(t);
        t
    }
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("relay.db")
    }
    pub fn secretariat(&self) -> Author<'_> {
        Author::new(&self.sec, ORIGIN)
    }
    /// Adds a statement to the Secretariat's log (not yet sent to the relay).
    pub fn push(&self, st: &Statement) {
        self.log.borrow_mut().push(st).unwrap();
    }
    /// The unpublished leaves and the Secretariat's checkpoint over them.
    pub fn prepared(&self) -> (Vec<Vec<u8>>, String) {
        let log = self.log.borrow();
        (log.unpublished().1.to_vec(), log.checkpoint(&self.sec).to_text())
    }
    pub async fn append(&self, from: &Identity, leaves: Vec<Vec<u8>>, checkpoint: String) -> Response {
        self.svc
            .handle(from.public_key(), Request::LogAppend { leaves, checkpoint })
            .await
    }
    /// Sends every unpublished statement to the relay, from the Secretariat's key.
    pub async fn publish(&self) {
        let (leaves, checkpoint) = self.prepared();
        let r = self.append(&self.sec, leaves, checkpoint).await;
        assert_eq!(r, Response::Done);
        self.log.borrow_mut().mark_published();
    }
    /// `state`'s national authority, enrolled in the Secretariat's log on first use.
    pub fn authority(&self, state: &str) -> Rc<Identity> {
        if let Some(a) = self.authorities.borrow().get(state) {
            return a.clone();
        }
        let a = Rc::new(id());
        let st = self
            .secretariat()
            .authority_enrol(
                self.tick(),
                state,
                a.public_key(),
                &format!("{state} national authority"),
                "MFA",
            )
            .unwrap();
        self.push(&st);
        self.authorities.borrow_mut().insert(state.into(), a.clone());
        a
    }
    /// `state`'s authority nominates `who` for `role`.
    pub fn nominate(&self, state: &str, role_text: &str, who: &Identity) -> Statement {
        let a = self.authority(state);
        let (cat, rank) = role(role_text);
        Author::new(&a, ORIGIN)
            .nominate(
                self.tick(),
                state,
                cat,
                rank,
                contact(&format!("{state} {role_text}")),
                &who.public(),
            )
            .unwrap()
    }
    /// The Secretariat approves a nomination of `who` after the voice check.
    pub fn approve(&self, nomination: &Statement, who: &Identity) -> Statement {
        let t = self.tick();
        self.secretariat().approve(t, nomination, &who.public(), t).unwrap()
    }
    /// Nominates and approves `who` (not yet published).
    pub fn stage(&self, state: &str, role_text: &str, who: &Identity) {
        let n = self.nominate(state, role_text, who);
        let a = self.approve(&n, who);
        self.push(&a);
    }
    /// New POCs, listed through one append.
    pub async fn members(&self, which: &[(&str, &str)]) -> Vec<Identity> {
        let out: Vec<Identity> = which
            .iter()
            .map(|(state, r)| {
                let who = id();
                self.stage(state, r, &who);
                who
            })
            .collect();
        self.publish().await;
        out
    }
    pub async fn member(&self, state: &str, role_text: &str) -> Identity {
        self.members(&[(state, role_text)]).await.pop().unwrap()
    }
    pub async fn send(&self, from: &Identity, envelope: Vec<u8>) -> Response {
        self.svc.handle(from.public_key(), Request::Send { envelope }).await
    }
    pub async fn ask(&self, from: &Identity, req: Request) -> Response {
        self.svc.handle(from.public_key(), req).await
    }
    pub async fn hello(&self, who: &Identity) -> Option<Member> {
        match self
            .ask(
                who,
                Request::Hello {
                    protocol: pocnet_wire::PROTOCOL_VERSION,
                },
            )
            .await
        {
            Response::Welcome { member, .. } => member,
            other => panic!("{other:?}"),
        }
    }
    pub async fn lookup(&self, from: &Identity, query: &str) -> Vec<Member> {
        match self.ask(from, Request::Lookup { query: query.into() }).await {
            Response::Directory { members } => members,
            other => panic!("{other:?}"),
        }
    }
    /// What the relay holds: checkpoint, every leaf, the admission list.
    pub async fn snapshot(&self) -> (Option<StoredCheckpoint>, Vec<Vec<u8>>, Vec<MemberRecord>) {
        let store = self.svc.store();
        (
            store.log_checkpoint().await.unwrap(),
            store.log_leaves(0, u32::MAX, usize::MAX).await.unwrap(),
            store.members().await.unwrap(),
        )
    }
    /// A checkpoint over the published log plus `extra`, signed by `signer` as the log.
    pub fn note_over(&self, extra: &[Vec<u8>], signer: &Identity) -> String {
        let mut hashes: Vec<_> = self.log.borrow().leaves().iter().map(|l| tlog::leaf_hash(l)).collect();
        hashes.extend(extra.iter().map(|l| tlog::leaf_hash(l)));
        let body = Checkpoint {
            origin: ORIGIN.into(),
            size: hashes.len() as u64,
            root: tlog::root(&hashes),
        }
        .body();
        SignedNote {
            signatures: vec![sign_note(&body, ORIGIN, signer)],
            body,
        }
        .to_text()
    }
    pub async fn checkpoint(&self, from: &Identity) -> String {
        match self.ask(from, Request::LogCheckpoint).await {
            Response::Checkpoint { note } => note,
            other => panic!("{other:?}"),
        }
    }
    /// A second relay process over the same database file, loaded.
    pub async fn restart(&self) -> (Svc, anyhow::Result<()>) {
        let svc = service(&self.path(), &self.clock, &self.cfg, &self.relay);
        let loaded = svc.load_directory().await;
        (svc, loaded)
    }
}

pub fn sealed(from: &Identity, to: &[&Identity]) -> pocnet_crypto::Sealed {
    let pubs: Vec<_> = to.iter().map(|i| i.public()).collect();
    let fields = HeaderFields {
        suite: Suite::X25519,
        ..HeaderFields::message(T0)
    };
    seal(
        &mut pocnet_crypto::os_rng(),
        from,
        &pubs,
        &fields,
        b"airport ATC degraded",
    )
    .unwrap()
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
