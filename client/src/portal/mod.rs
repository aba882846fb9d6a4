//! `pocnet portal`: a web view of this user's own verified store, served on 127.0.0.1.
//!
//! Nothing here is a server for anyone else. The portal is the CLI's operations behind
//! pages: the same [`crate::app::Client`] (on its own thread, see [`actor`]), the same
//! view structs, the same rules (TLP, key-change blocks, exercise marking).
//!
//! **Who may use it.** Only whoever holds the one-time token printed at start: the token
//! is exchanged once for a session cookie (`HttpOnly`, `SameSite=Strict`), then forgotten.
//! Every request must name this listener in its `Host` header (127.0.0.1 or localhost with
//! our port), which defeats DNS rebinding; every state-changing request must carry the
//! session's CSRF token and, when the browser sends them, a same-origin `Origin` and
//! `Sec-Fetch-Site`. Every response carries a Content-Security-Policy that allows only
//! this origin's stylesheet and script, no inline code, no frames, no other origin.
//!
//! **Text from other parties** reaches pages only through the template engine's HTML
//! escaping (every template is `.html`, auto-escaped; nothing is marked safe but our own
//! fragments built from escaped parts), and downloads are served as attachments with
//! `nosniff` and a sandboxing CSP so a hostile file cannot run in this origin.

mod actor;
mod i18n;
mod pages;
mod policy;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pocnet_core::alert::Lang;

use crate::app::Client;
use crate::error::{Error, Result};

pub use actor::{Ctx, Handle};

/// Most sessions one portal keeps (each login spends the one-time token, so more than one
/// means the user restarted a browser with a second printed link).
const MAX_SESSIONS: usize = 16;

/// The cookie's name: cookies are per host, not per port, so two portals on one machine
/// (two profiles) each name their own.
fn cookie_name(port: u16) -> String {
    format!("pocnet_portal_{port}")
}

/// How `pocnet portal` was asked to run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Folders holding drill records (`*.record` files) to list.
    pub drills: Vec<PathBuf>,
}

/// Who this profile is, for which actions the pages offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A listed point of contact.
    Poc,
    /// The Secretariat (starts rounds).
    Secretariat,
    /// A state's national authority (publishes policies).
    Authority,
    /// Enrolled but not (yet) listed.
    Other,
}

#[derive(Clone)]
pub(crate) struct Sess {
    pub csrf: String,
    pub lang: Lang,
}

pub(crate) struct Inner {
    pub handle: Handle,
    pub env: minijinja::Environment<'static>,
    token: Mutex<Option<[u8; 32]>>,
    sessions: Mutex<HashMap<[u8; 32], Sess>>,
    pub port: u16,
    pub drills: Vec<PathBuf>,
    pub default_lang: Lang,
    pub role: Role,
    pub me: String,
    pub lang_file: PathBuf,
}

pub(crate) type App = Arc<Inner>;

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    pocnet_crypto::rand_core::Rng::fill_bytes(&mut pocnet_crypto::os_rng(), &mut b);
    b
}

/// Equality that takes the same time wherever the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let v = pocnet_crypto::from_hex(s.trim())?;
    v.try_into().ok()
}

/// A running portal.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The login URL with the one-time token.
    pub url: String,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Serves until the server stops (Ctrl-C ends the process).
    pub async fn wait(self) -> Result<()> {
        match self.server.await {
            Ok(r) => r.map_err(|e| Error::Io {
                context: "the portal's listener failed".into(),
                source: e,
            }),
            Err(e) => Err(Error::Protocol(format!("the portal stopped: {e}"))),
        }
    }
}

/// Opens the listener on 127.0.0.1, starts the client thread, waits for the first sync
/// (or the relay's refusal), and serves.
pub async fn start(client: Client, opts: Options) -> Result<Running> {
    let default_lang = client.own_language();
    let lang_file = client.profile.dir.join("portal-language");
    let (role, me) = role_of(&client);
    let (handle, ready) = actor::spawn(client);
    let _ = ready.await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
        .await
        .map_err(|e| Error::Io {
            context: format!("cannot listen on 127.0.0.1:{}", opts.port),
            source: e,
        })?;
    let addr = listener.local_addr().map_err(|e| Error::Io {
        context: "the portal's address".into(),
        source: e,
    })?;
    let token = random32();
    let saved_lang = std::fs::read_to_string(&lang_file)
        .ok()
        .map(|t| Lang::from_tags(&[t.trim().to_string()]));
    let inner = Arc::new(Inner {
        handle,
        env: pages::environment(),
        token: Mutex::new(Some(token)),
        sessions: Mutex::new(HashMap::new()),
        port: addr.port(),
        drills: opts.drills,
        default_lang: saved_lang.unwrap_or(default_lang),
        role,
        me,
        lang_file,
    });
    let url = format!(
        "http://127.0.0.1:{}/login?token={}",
        addr.port(),
        pocnet_crypto::to_hex(&token)
    );
    let router = pages::router(inner.clone())
        .layer(axum::middleware::from_fn_with_state(inner.clone(), guard))
        .layer(axum::middleware::map_response(security_headers));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(Running { addr, url, server })
}

fn role_of(c: &Client) -> (Role, String) {
    let Ok(Some(log)) = c.local_log() else {
        return (Role::Other, c.identity.public_key().fingerprint().short());
    };
    let dir = log.directory();
    let me = c.identity.public_key();
    if dir.secretariat() == me {
        return (Role::Secretariat, "Secretariat".into());
    }
    if let Some(a) = dir.authorities().find(|a| a.key == *me) {
        return (Role::Authority, format!("{} national authority", a.state));
    }
    if let Some(p) = dir.by_key(me) {
        return (Role::Poc, p.handle_text());
    }
    (Role::Other, me.fingerprint().short())
}

/// Every response: the strict CSP and friends. Downloads set their own sandboxing CSP.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                 connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    res
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

fn host_ok(app: &Inner, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    host == format!("127.0.0.1:{}", app.port) || host == format!("localhost:{}", app.port)
}

fn origin_ok(app: &Inner, headers: &HeaderMap) -> bool {
    if let Some(o) = headers.get(header::ORIGIN) {
        let Ok(o) = o.to_str() else { return false };
        if o != format!("http://127.0.0.1:{}", app.port) && o != format!("http://localhost:{}", app.port) {
            return false;
        }
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        None | Some("same-origin") | Some("none") => true,
        Some(_) => false,
    }
}

fn cookie_session(headers: &HeaderMap, port: u16) -> Option<[u8; 32]> {
    let name = cookie_name(port);
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(';') {
            if let Some((k, val)) = part.trim().split_once('=') {
                if k == name {
                    return parse_hex32(val);
                }
            }
        }
    }
    None
}

/// Host check on everything; the login exchange; the session on everything else; origin
/// checks on every state-changing request.
async fn guard(State(app): State<App>, mut req: Request, next: Next) -> Response {
    if !host_ok(&app, req.headers()) {
        return plain(
            StatusCode::MISDIRECTED_REQUEST,
            "refused: this portal answers only to http://127.0.0.1 with its own port",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD && !origin_ok(&app, req.headers()) {
        return plain(StatusCode::FORBIDDEN, "refused: a request from another site");
    }
    let path = req.uri().path().to_string();
    if path == "/login" {
        return login(&app, req.uri().query().unwrap_or(""));
    }
    let sess = cookie_session(req.headers(), app.port).and_then(|id| {
        let map = app.sessions.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().find(|(k, _)| same(*k, &id)).map(|(_, s)| s.clone())
    });
    let Some(sess) = sess else {
        return plain(
            StatusCode::UNAUTHORIZED,
            "not signed in: open the link `pocnet portal` printed (each link works once; \
             run `pocnet portal` again for a new one)",
        );
    };
    req.extensions_mut().insert(sess);
    next.run(req).await
}

fn login(app: &Inner, query: &str) -> Response {
    let given = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .and_then(|(_, v)| parse_hex32(v));
    let mut token = app.token.lock().unwrap_or_else(|e| e.into_inner());
    let ok = match (&*token, given) {
        (Some(t), Some(g)) => same(t, &g),
        _ => false,
    };
    if !ok {
        return plain(
            StatusCode::FORBIDDEN,
            "this sign-in link is wrong or was already used: run `pocnet portal` again for a new one",
        );
    }
    *token = None;
    let id = random32();
    let sess = Sess {
        csrf: pocnet_crypto::to_hex(&random32()),
        lang: app.default_lang,
    };
    {
        let mut map = app.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_SESSIONS {
            map.clear();
        }
        map.insert(id, sess);
    }
    let cookie = format!(
        "{}={}; HttpOnly; SameSite=Strict; Path=/",
        cookie_name(app.port),
        pocnet_crypto::to_hex(&id)
    );
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, "/")
        .header(header::SET_COOKIE, cookie)
        .body(Body::empty())
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "error"))
}

impl Inner {
    /// Records a session's language choice (and remembers it for this profile).
    pub(crate) fn set_lang(&self, csrf: &str, lang: Lang) {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        for s in map.values_mut() {
            if s.csrf == csrf {
                s.lang = lang;
            }
        }
        let _ = std::fs::write(&self.lang_file, lang.tag());
    }
}

/// Whether a submitted form's CSRF token is this session's.
pub(crate) fn csrf_ok(sess: &Sess, given: &str) -> bool {
    same(sess.csrf.as_bytes(), given.as_bytes())
}

/// HTML-escapes our own error text where no template is at hand.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
