//! The pages: each handler runs one job on the client thread (the same operations the
//! CLI calls), turns the view structs into a template context, and renders it. Forms
//! post back here and check the session's CSRF token first.

use std::convert::Infallible;
use std::rc::Rc;
use std::time::Duration;

use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::Environment;
use pocnet_core::alert::{label, Label, Lang, MsgType};
use pocnet_crypto::{ContentType, Tlp};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{csrf_ok, i18n, App, Ctx, Role, Sess};
use crate::error::{Error, Result};
use crate::ops::alerts::AlertView;
use crate::render::{fmt_time, MessageView};
use crate::types::Direction;

/// Messages per page of a listing.
pub const PAGE: usize = 50;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("home.html", include_str!("templates/home.html")),
    ("directory.html", include_str!("templates/directory.html")),
    ("messages.html", include_str!("templates/messages.html")),
    ("message.html", include_str!("templates/message.html")),
    ("send.html", include_str!("templates/send.html")),
    ("alerts.html", include_str!("templates/alerts.html")),
    ("alert.html", include_str!("templates/alert.html")),
    ("alert_status.html", include_str!("templates/alert_status.html")),
    ("rounds.html", include_str!("templates/rounds.html")),
    ("round.html", include_str!("templates/round.html")),
    ("drills.html", include_str!("templates/drills.html")),
    ("drill.html", include_str!("templates/drill.html")),
    ("incident.html", include_str!("templates/incident.html")),
    ("policies.html", include_str!("templates/policies.html")),
    ("policy.html", include_str!("templates/policy.html")),
    ("error.html", include_str!("templates/error.html")),
];

const CSS: &str = include_str!("static/portal.css");
const JS: &str = include_str!("static/live.js");

/// Human duration of milliseconds: `45 s`, `12 min`, `3 h 05 min`, `2 d 4 h`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=119 => format!("{s} s"),
        120..=3599 => format!("{} min", s / 60),
        3600..=172_799 => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// The template engine: every template is `.html`, so every value is HTML-escaped unless
/// a template says `|safe` (only our own rendered fragments do).
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, src) in TEMPLATES {
        env.add_template(name, src).expect("portal templates parse");
    }
    env.add_filter("time", |ms: Option<u64>| ms.map(fmt_time).unwrap_or_default());
    env.add_filter("dur", |ms: Option<u64>| ms.map(duration).unwrap_or_default());
    env
}

pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/static/portal.css", get(css))
        .route("/static/live.js", get(js))
        .route("/lang", post(set_lang))
        .route("/directory", get(directory))
        .route("/messages", get(messages))
        .route("/messages/{id}", get(message))
        .route("/send", get(send_form).post(send))
        .route("/alerts", get(alerts))
        .route("/alerts/{id}", get(alert))
        .route("/alerts/{id}/ack", post(alert_ack))
        .route("/alerts/{id}/events", get(alert_events))
        .route("/rounds", get(rounds))
        .route("/rounds/{id}", get(round))
        .route("/rounds/answer", post(round_answer))
        .route("/rounds/start", post(round_start))
        .route("/drills", get(drills))
        .route("/drills/{n}", get(drill))
        .route("/incidents/{id}", get(incident))
        .route("/policies", get(super::policy::policies))
        .route("/policies/{doc}", get(super::policy::policy))
        .route("/policies/{doc}/file", get(super::policy::policy_file))
        .with_state(app)
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

async fn js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], JS).into_response()
}

/// `TLP:AMBER+STRICT` → `amber-strict`, for the colour class.
pub(crate) fn tlp_class(t: Tlp) -> &'static str {
    match t {
        Tlp::Clear => "clear",
        Tlp::Green => "green",
        Tlp::Amber => "amber",
        Tlp::AmberStrict => "amber-strict",
        Tlp::Red => "red",
    }
}

/// "EXERCISE" in the reader's language, and in English beside it when that is another.
pub(crate) fn exercise_label(lang: Lang) -> String {
    let own = label(lang, Label::Exercise);
    if lang == Lang::En {
        own.to_string()
    } else {
        format!("{own} / {}", label(Lang::En, Label::Exercise))
    }
}

fn alert_brief(a: &AlertView) -> Value {
    json!({
        "id": a.id, "headline": a.body.headline, "from": a.from, "tlp": a.tlp.label(),
        "tlp_class": tlp_class(a.tlp), "exercise": a.exercise,
    })
}

/// What every page shows around its content.
struct Chrome {
    open_alerts: Vec<Value>,
}

fn chrome(ctx: &Ctx) -> Chrome {
    let open_alerts = ctx
        .client
        .alerts_open()
        .map(|v| v.iter().map(alert_brief).collect())
        .unwrap_or_default();
    Chrome { open_alerts }
}

/// The context every page shares: words, language, session token, who, where.
#[allow(clippy::too_many_arguments)]
fn base_context(
    lang: Lang,
    csrf: &str,
    me: &str,
    role: Role,
    online: bool,
    path: &str,
    active: &str,
    alerts: &[Value],
) -> Value {
    let mut nav: Vec<(&str, &str)> = vec![
        ("home", "/"),
        ("directory", "/directory"),
        ("messages", "/messages"),
        ("alerts", "/alerts"),
        ("rounds", "/rounds"),
        ("drills", "/drills"),
        ("policies", "/policies"),
    ];
    if role == Role::Other {
        nav.retain(|(k, _)| *k != "rounds");
    }
    json!({
        "tr": i18n::strings(lang),
        "lang": lang.tag(),
        "langs": i18n::LANGS,
        "csrf": csrf,
        "me": me,
        "role": role,
        "online": online,
        "nav": nav,
        "active": active,
        "path": path,
        "open_alerts": alerts,
        "exercise_label": exercise_label(lang),
        "exercise_short": label(lang, Label::Exercise).split(['—', '-']).next().unwrap_or("EXERCISE").trim(),
        "notice": Value::Null,
        "problem": Value::Null,
        "title": "",
    })
}

/// `template` drawn with `base` plus `data`'s keys.
fn draw(
    env: &Environment<'static>,
    template: &str,
    mut base: Value,
    data: Value,
) -> std::result::Result<String, minijinja::Error> {
    if let (Some(obj), Value::Object(extra)) = (base.as_object_mut(), data) {
        for (k, v) in extra {
            obj.insert(k, v);
        }
    }
    env.get_template(template).and_then(|t| t.render(&base))
}

/// Renders `template` with the common context plus `data`'s keys.
pub(crate) fn render(
    app: &App,
    sess: &Sess,
    path: &str,
    active: &str,
    template: &str,
    chrome_alerts: &[Value],
    data: Value,
) -> Response {
    let base = base_context(
        sess.lang,
        &sess.csrf,
        &app.me,
        app.role,
        app.handle.online(),
        path,
        active,
        chrome_alerts,
    );
    match draw(&app.env, template, base, data) {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!("portal: template {template}: {e:#}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be drawn; see the portal's log",
            )
                .into_response()
        }
    }
}

/// Runs `f` on the client thread with the page chrome, and renders the result; an error
/// becomes the error page with the operation's own words.
pub(crate) async fn page<F, Fut>(
    app: App,
    sess: Sess,
    path: String,
    active: &'static str,
    template: &'static str,
    f: F,
) -> Response
where
    F: FnOnce(Rc<Ctx>, Lang) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Value>> + 'static,
{
    let lang = sess.lang;
    let r = app
        .handle
        .run(move |ctx| async move {
            let data = f(ctx.clone(), lang).await;
            let ch = chrome(&ctx);
            Ok((ch.open_alerts, data))
        })
        .await;
    match r {
        Ok((alerts, Ok(data))) => render(&app, &sess, &path, active, template, &alerts, data),
        Ok((alerts, Err(e))) => error_page(&app, &sess, &path, active, &alerts, &e),
        Err(e) => error_page(&app, &sess, &path, active, &[], &e),
    }
}

pub(crate) fn error_page(app: &App, sess: &Sess, path: &str, active: &str, alerts: &[Value], e: &Error) -> Response {
    let tr = i18n::strings(sess.lang);
    let (status, heading) = match e {
        Error::UnknownMessage(_) | Error::BadMessageId(_) | Error::UnknownContact { .. } => {
            (StatusCode::NOT_FOUND, tr["not_found"])
        }
        _ => (StatusCode::UNPROCESSABLE_ENTITY, tr["error"]),
    };
    let mut r = render(
        app,
        sess,
        path,
        active,
        "error.html",
        alerts,
        json!({"heading": heading, "problem": e.to_string(), "title": heading}),
    );
    *r.status_mut() = status;
    r
}

fn refused_csrf() -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "refused: this form is not from your portal session (reload the page and try again)",
    )
        .into_response()
}

async fn home(State(app): State<App>, Extension(sess): Extension<Sess>) -> Response {
    page(app, sess, "/".into(), "home", "home.html", |ctx, _lang| async move {
        let c = &ctx.client;
        let checks = c.round_unanswered()?.len();
        let inbox = c.store.count(Direction::In)?;
        let sent = c.store.count(Direction::Out)?;
        let (members, states, mut reminders) = match c.local_log()? {
            Some(log) => {
                let dir = log.directory();
                let mut states: Vec<&str> = dir.members().iter().map(|p| p.state()).collect();
                states.sort_unstable();
                states.dedup();
                (dir.member_count(), states.len(), Vec::new())
            }
            None => (0, 0, Vec::new()),
        };
        if let Ok(Some(me)) = c.own_record() {
            if me.is_stale(crate::now_ms()) {
                reminders.push(crate::render::stale_reminder(&me));
            }
        }
        Ok(json!({
            "title": "", "checks": vec![0; checks], "inbox_count": inbox, "sent_count": sent,
            "member_count": members, "state_count": states, "reminders": reminders,
        }))
    })
    .await
}

#[derive(Deserialize)]
struct LangForm {
    csrf: String,
    lang: String,
    back: Option<String>,
}

async fn set_lang(State(app): State<App>, Extension(sess): Extension<Sess>, Form(f): Form<LangForm>) -> Response {
    if !csrf_ok(&sess, &f.csrf) {
        return refused_csrf();
    }
    app.set_lang(&sess.csrf, Lang::from_tags(&[f.lang]));
    // Only our own paths: never a redirect elsewhere.
    let back = f
        .back
        .filter(|b| b.starts_with('/') && !b.starts_with("//") && !b.contains('\\'))
        .unwrap_or_else(|| "/".into());
    Redirect::to(&back).into_response()
}

async fn directory(State(app): State<App>, Extension(sess): Extension<Sess>) -> Response {
    page(
        app,
        sess,
        "/directory".into(),
        "directory",
        "directory.html",
        |ctx, _| async move {
            let c = &ctx.client;
            ctx.refresh_directory().await;
            let Some(log) = c.local_log()? else {
                return Ok(json!({"title": "", "states": [], "log_size": 0, "origin": ""}));
            };
            let dir = log.directory();
            let rows = c.directory_rows(dir, dir.members(), crate::now_ms())?;
            let mut states: Vec<Value> = Vec::new();
            let mut current: Option<(String, Vec<Value>)> = None;
            let mut sorted = rows;
            sorted.sort_by(|a, b| a.handle.cmp(&b.handle));
            for r in sorted {
                let st = r.handle.split('.').next().unwrap_or("").to_string();
                if current.as_ref().is_some_and(|(s, _)| *s != st) {
                    let (s, pocs) = current.take().expect("checked");
                    states.push(state_json(dir, &s, pocs));
                }
                let entry = current.get_or_insert_with(|| (st.clone(), Vec::new()));
                entry.1.push(serde_json::to_value(&r).unwrap_or(Value::Null));
            }
            if let Some((s, pocs)) = current {
                states.push(state_json(dir, &s, pocs));
            }
            Ok(json!({"title": "", "states": states, "log_size": dir.size(), "origin": dir.origin()}))
        },
    )
    .await
}

fn state_json(dir: &pocnet_core::directory::Directory, code: &str, pocs: Vec<Value>) -> Value {
    let authority = dir.authority(code).map(|a| format!("{} ({})", a.name, a.institution));
    json!({"code": code, "authority": authority, "pocs": pocs})
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(rename = "box")]
    mailbox: Option<String>,
    page: Option<usize>,
}

fn message_json(v: &MessageView, tlp: Tlp) -> Value {
    let mut j = serde_json::to_value(v).unwrap_or(Value::Null);
    if let Some(o) = j.as_object_mut() {
        o.insert("tlp_class".into(), json!(tlp_class(tlp)));
    }
    j
}

async fn messages(State(app): State<App>, Extension(sess): Extension<Sess>, Query(q): Query<ListQuery>) -> Response {
    let out = q.mailbox.as_deref() == Some("out");
    let page_no = q.page.unwrap_or(0).min(1_000_000);
    let path = format!("/messages?box={}", if out { "out" } else { "in" });
    page(app, sess, path, "messages", "messages.html", move |ctx, _| async move {
        let c = &ctx.client;
        let dir = if out { Direction::Out } else { Direction::In };
        let rows = c.store.list_page(dir, PAGE + 1, page_no * PAGE)?;
        let more = rows.len() > PAGE;
        let list: Vec<Value> = rows
            .iter()
            .take(PAGE)
            .map(|m| message_json(&MessageView::from(m), m.tlp))
            .collect();
        Ok(json!({
            "title": "", "box": if out { "out" } else { "in" }, "messages": list, "page": page_no, "more": more,
            "inbox_count": c.store.count(Direction::In)?, "sent_count": c.store.count(Direction::Out)?,
        }))
    })
    .await
}

async fn message(State(app): State<App>, Extension(sess): Extension<Sess>, Path(id): Path<String>) -> Response {
    let path = format!("/messages/{id}");
    page(
        app,
        sess,
        path,
        "messages",
        "message.html",
        move |ctx, lang| async move {
            let c = &ctx.client;
            let found = c.store.find(&id)?;
            // Opening it here is reading it: the sender gets the signed Read receipt.
            let m = if found.direction == Direction::In && found.read_at.is_none() {
                match ctx.session().await {
                    Ok(s) => c.read(&id, Some(&*s)).await?,
                    Err(_) => c.read(&id, None).await?,
                }
            } else {
                found
            };
            let v = MessageView::from(&m);
            Ok(json!({
                "title": m.subject, "m": message_json(&v, m.tlp),
                "tlp_meaning": label(lang, Label::TlpMeaning(m.tlp)), "incident": m.incident,
            }))
        },
    )
    .await
}

#[derive(Deserialize, Default, serde::Serialize)]
struct SendForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    tlp: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    text: String,
}

fn tlps(lang: Lang) -> Vec<(&'static str, &'static str)> {
    [
        ("clear", Tlp::Clear),
        ("green", Tlp::Green),
        ("amber", Tlp::Amber),
        ("amber+strict", Tlp::AmberStrict),
        ("red", Tlp::Red),
    ]
    .iter()
    .map(|(k, t)| (*k, label(lang, Label::TlpMeaning(*t))))
    .collect()
}

async fn send_form(State(app): State<App>, Extension(sess): Extension<Sess>) -> Response {
    page(
        app,
        sess,
        "/send".into(),
        "messages",
        "send.html",
        |_, lang| async move {
            Ok(json!({"title": "", "tlps": tlps(lang), "form": {"to": "", "tlp": "amber", "subject": "", "text": ""}}))
        },
    )
    .await
}

async fn send(State(app): State<App>, Extension(sess): Extension<Sess>, Form(f): Form<SendForm>) -> Response {
    if !csrf_ok(&sess, &f.csrf) {
        return refused_csrf();
    }
    page(
        app,
        sess,
        "/send".into(),
        "messages",
        "send.html",
        move |ctx, lang| async move {
            let form = json!({"to": f.to, "tlp": f.tlp, "subject": f.subject, "text": f.text});
            let outcome: Result<String> = async {
                let tlp = Tlp::parse(&f.tlp).ok_or_else(|| Error::Usage(format!("unknown TLP marking {:?}", f.tlp)))?;
                let to: Vec<String> =
                    f.to.split([',', ' ', ';'])
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                if to.is_empty() {
                    return Err(Error::Usage("name at least one recipient".into()));
                }
                let s = ctx.session().await?;
                let sent = ctx
                    .client
                    .send(
                        &s,
                        &to,
                        &crate::app::Outgoing {
                            subject: f.subject.clone(),
                            text: f.text.clone(),
                            tlp,
                            attachments: Vec::new(),
                            incident_id: None,
                        },
                    )
                    .await?;
                ctx.changed();
                Ok(sent.id.to_hex())
            }
            .await;
            Ok(match outcome {
                Ok(id) => json!({
                    "title": "", "tlps": tlps(lang), "notice": format!("{} ({id})", i18n::strings(lang)["sent_ok"]),
                    "form": {"to": "", "tlp": "amber", "subject": "", "text": ""},
                }),
                Err(e) => json!({"title": "", "tlps": tlps(lang), "problem": e.to_string(), "form": form}),
            })
        },
    )
    .await
}

async fn alerts(State(app): State<App>, Extension(sess): Extension<Sess>) -> Response {
    page(
        app,
        sess,
        "/alerts".into(),
        "alerts",
        "alerts.html",
        |ctx, _| async move {
            let c = &ctx.client;
            let mut received = c.alerts_received()?;
            received.sort_by_key(|a| (a.acked_at.is_some(), std::cmp::Reverse(a.accepted_ms)));
            let received: Vec<Value> = received
                .iter()
                .map(|a| {
                    let mut j = alert_brief(a);
                    j["accepted"] = json!(a.accepted_ms);
                    j["acked_at"] = json!(a.acked_at);
                    j
                })
                .collect();
            let sent: Vec<Value> = c
                .store
                .list_of(Direction::Out, ContentType::Alert)?
                .iter()
                .map(|m| {
                    json!({"id": m.id.to_hex(), "subject": m.subject, "at": m.created_at, "tlp": m.tlp.label(),
                       "tlp_class": tlp_class(m.tlp), "exercise": m.exercise})
                })
                .collect();
            Ok(json!({"title": "", "received": received, "sent": sent}))
        },
    )
    .await
}

fn kind_label(lang: Lang, t: MsgType, all_clear: bool) -> &'static str {
    match t {
        MsgType::Alert => label(lang, Label::Alert),
        MsgType::Update if all_clear => label(lang, Label::AllClear),
        MsgType::Update => label(lang, Label::Update),
        MsgType::Cancel => label(lang, Label::Cancelled),
        _ => label(lang, Label::Alert),
    }
}

/// The live status of an alert we sent, as an HTML fragment (the same on the page and in
/// each server-sent event).
async fn status_fragment(app: &App, lang: Lang, id: String) -> String {
    let r = app
        .handle
        .run(move |ctx| async move {
            let s = ctx.session().await?;
            let st = ctx.client.alert_status(&s, &id).await?;
            Ok(status_json(&st))
        })
        .await;
    let data = match r {
        Ok(v) => v,
        Err(e) => json!({"problem": e.to_string(), "states": []}),
    };
    let mut ctx = data;
    ctx["tr"] = json!(i18n::strings(lang));
    app.env
        .get_template("alert_status.html")
        .and_then(|t| t.render(&ctx))
        .unwrap_or_else(|e| format!("<p class=\"problem\">{}</p>", crate::portal::escape(&e.to_string())))
}

fn status_json(st: &pocnet_core::alert::AlertStatus) -> Value {
    json!({
        "problem": Value::Null,
        "states": st.states.iter().map(|s| json!({
            "state": s.state, "depth": s.depth, "acknowledged_by": s.acknowledged_by,
            "time_to_ack": s.time_to_ack_ms, "unreached": s.unreached, "next_due": s.next_due_ms,
            "relay_lied": s.relay_claims_cancel_without_ack,
            "pocs": s.pocs.iter().map(|p| json!({
                "handle": p.handle, "rank": p.rank + 1, "state": p.state.as_str(),
                "when": p.acknowledged_ms.or(p.read_ms).or(p.delivered_ms).or(p.released_ms).or(p.due_ms),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

async fn alert(State(app): State<App>, Extension(sess): Extension<Sess>, Path(id): Path<String>) -> Response {
    let path = format!("/alerts/{id}");
    let id2 = id.clone();
    let lang = sess.lang;
    let r = app
        .handle
        .run(move |ctx| async move {
            let c = &ctx.client;
            let m = c.store.find(&id2)?;
            if m.content_type != ContentType::Alert {
                return Err(Error::UnknownMessage(id2));
            }
            let data = if m.direction == Direction::In {
                let a = c
                    .alert_view(&m)?
                    .ok_or_else(|| Error::UnknownMessage(id2.clone()))?;
                let all_clear = a.body.is_all_clear();
                json!({
                    "title": a.body.headline,
                    "tlp_meaning": label(lang, Label::TlpMeaning(a.tlp)),
                    "a": {
                        "id": a.id, "received": true, "sent_by_me": false, "kind": kind_label(lang, a.body.msg_type, all_clear),
                        "headline": a.body.headline, "description": a.body.description, "instruction": a.body.instruction,
                        "from": a.from, "severity": label(lang, Label::Severity(a.body.severity)),
                        "urgency": label(lang, Label::Urgency(a.body.urgency)), "sent": a.body.sent_ms,
                        "incident": a.incident, "tlp": a.tlp.label(), "tlp_class": tlp_class(a.tlp),
                        "exercise": a.exercise, "acked_at": a.acked_at, "escalates_at": a.escalates_at(),
                        "late": a.release.map(|r| r.late()).unwrap_or(false),
                    }
                })
            } else {
                json!({
                    "title": m.subject,
                    "tlp_meaning": label(lang, Label::TlpMeaning(m.tlp)),
                    "a": {
                        "id": m.id.to_hex(), "received": false, "sent_by_me": true, "kind": label(lang, Label::Alert),
                        "headline": m.subject, "description": m.body, "instruction": "",
                        "from": ctx.client.handle().unwrap_or("?"), "severity": "", "urgency": "",
                        "sent": m.created_at, "incident": m.incident, "tlp": m.tlp.label(),
                        "tlp_class": tlp_class(m.tlp), "exercise": m.exercise,
                    }
                })
            };
            Ok((data, chrome(&ctx).open_alerts))
        })
        .await;
    match r {
        Ok((mut data, alerts)) => {
            if data["a"]["sent_by_me"] == json!(true) {
                data["status_html"] = json!(status_fragment(&app, lang, id).await);
            }
            render(&app, &sess, &path, "alerts", "alert.html", &alerts, data)
        }
        Err(e) => error_page(&app, &sess, &path, "alerts", &[], &e),
    }
}

#[derive(Deserialize)]
struct AckForm {
    csrf: String,
    #[serde(default)]
    note: String,
}

async fn alert_ack(
    State(app): State<App>,
    Extension(sess): Extension<Sess>,
    Path(id): Path<String>,
    Form(f): Form<AckForm>,
) -> Response {
    if !csrf_ok(&sess, &f.csrf) {
        return refused_csrf();
    }
    let id2 = id.clone();
    let r = app
        .handle
        .run(move |ctx| async move {
            let note = f.note.trim();
            let s = ctx.session().await.ok();
            // Signed at once; kept in the outbox until the relay has it (as the CLI does).
            ctx.client
                .alert_ack(s.as_deref(), &id2, (!note.is_empty()).then_some(note))
                .await?;
            ctx.changed();
            Ok(())
        })
        .await;
    match r {
        Ok(()) => Redirect::to(&format!("/alerts/{id}")).into_response(),
        Err(e) => error_page(&app, &sess, &format!("/alerts/{id}"), "alerts", &[], &e),
    }
}

/// Server-sent events: the status fragment each time it changes. Woken by every stored
/// delivery (an acknowledgement is a receipt delivered to us) and, for releases that only
/// the relay sees, every two seconds.
async fn alert_events(
    State(app): State<App>,
    Extension(sess): Extension<Sess>,
    Path(id): Path<String>,
) -> Sse<impl futures_util::Stream<Item = std::result::Result<Event, Infallible>>> {
    let changes = app.handle.changes();
    let state = (app, sess.lang, id, String::new(), changes, true);
    let stream = futures_util::stream::unfold(state, |(app, lang, id, last, mut changes, first)| async move {
        if !first {
            // Wait for a change here, or the relay's own clock.
            let _ = tokio::time::timeout(Duration::from_secs(2), changes.changed()).await;
        }
        let mut last = last;
        loop {
            let html = status_fragment(&app, lang, id.clone()).await.replace('\n', " ");
            if html != last {
                last = html.clone();
                let ev = Event::default().event("status").data(html);
                return Some((Ok(ev), (app, lang, id, last, changes, false)));
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), changes.changed()).await;
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn rounds(State(app): State<App>, Extension(sess): Extension<Sess>) -> Response {
    page(
        app,
        sess,
        "/rounds".into(),
        "rounds",
        "rounds.html",
        |ctx, _| async move { rounds_data(&ctx) },
    )
    .await
}

async fn round(State(app): State<App>, Extension(sess): Extension<Sess>, Path(id): Path<String>) -> Response {
    let path = format!("/rounds/{id}");
    page(app, sess, path, "rounds", "round.html", move |ctx, lang| async move {
        let r = ctx.client.round_report(&id)?;
        let tr = i18n::strings(lang);
        let t = &r.totals;
        let max = t.targets.max(1) as f64;
        let bars: Vec<(String, u32, u32)> = [
            (tr["within_1h"], t.within_1h),
            (tr["within_24h"], t.within_24h),
            (tr["by_deadline"], t.by_deadline),
            (tr["late"], t.late),
            (tr["never"], t.never),
        ]
        .iter()
        .map(|(l, n)| (l.to_string(), *n, ((*n as f64 / max) * 200.0).round() as u32))
        .collect();
        Ok(json!({"title": "", "r": r, "bars": bars}))
    })
    .await
}

#[derive(Deserialize)]
struct AnswerForm {
    csrf: String,
    round: String,
    #[serde(default)]
    note: String,
}

async fn round_answer(State(app): State<App>, Extension(sess): Extension<Sess>, Form(f): Form<AnswerForm>) -> Response {
    if !csrf_ok(&sess, &f.csrf) {
        return refused_csrf();
    }
    page(
        app,
        sess,
        "/rounds".into(),
        "rounds",
        "rounds.html",
        move |ctx, lang| async move {
            let s = ctx.session().await?;
            let id = ctx.client.round_answer(&s, Some(&f.round), None, f.note.trim()).await?;
            ctx.changed();
            let tr = i18n::strings(lang);
            let mut data = rounds_data(&ctx)?;
            data["notice"] = json!(format!("{} ({})", tr["answered"], &id[..id.len().min(8)]));
            Ok(data)
        },
    )
    .await
}

fn rounds_data(ctx: &Ctx) -> Result<Value> {
    let c = &ctx.client;
    let pending: Vec<Value> = c
        .round_unanswered()?
        .iter()
        .map(|p| {
            let ch = pocnet_core::round::Challenge::parse(&p.challenge).ok();
            let question = ch.as_ref().and_then(|c| match &c.request {
                pocnet_core::round::Request::Question(q) => Some(q.clone()),
                _ => None,
            });
            json!({
                "round": pocnet_crypto::to_hex(&p.round_id), "deadline": ch.as_ref().map(|c| c.deadline_ms),
                "question": question, "exercise": p.exercise,
            })
        })
        .collect();
    let rounds: Vec<Value> = c
        .round_list()?
        .into_iter()
        .map(|(id, targets, answered, at)| json!({"id": id, "targets": targets, "answered": answered, "at": at}))
        .collect();
    Ok(json!({"title": "", "pending": pending, "rounds": rounds}))
}

#[derive(Deserialize)]
struct StartForm {
    csrf: String,
    #[serde(default)]
    states: String,
    #[serde(default)]
    hours: String,
    #[serde(default)]
    question: String,
    exercise: Option<String>,
}

async fn round_start(State(app): State<App>, Extension(sess): Extension<Sess>, Form(f): Form<StartForm>) -> Response {
    if !csrf_ok(&sess, &f.csrf) {
        return refused_csrf();
    }
    if app.role != Role::Secretariat {
        return error_page(
            &app,
            &sess,
            "/rounds",
            "rounds",
            &[],
            &Error::Usage("only the Secretariat starts rounds".into()),
        );
    }
    page(
        app,
        sess,
        "/rounds".into(),
        "rounds",
        "rounds.html",
        move |ctx, lang| async move {
            let states = f
                .states
                .split([',', ' ', ';'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(crate::ops::governance::parse_state)
                .collect::<Result<Vec<_>>>()?;
            let hours: f64 = f
                .hours
                .trim()
                .parse()
                .ok()
                .filter(|h: &f64| *h >= 1.0 && *h <= 720.0)
                .ok_or_else(|| Error::Usage("hours to answer: a number from 1 to 720".into()))?;
            let sel = crate::ops::rounds::Selection {
                states,
                categories: Vec::new(),
                ranks: Vec::new(),
                exercise: f.exercise.is_some(),
            };
            let q = f.question.trim();
            let request = if q.is_empty() {
                pocnet_core::round::Request::ConfirmDetails
            } else {
                pocnet_core::round::Request::Question(q.to_string())
            };
            let s = ctx.session().await?;
            let deadline = crate::now_ms() + (hours * 3_600_000.0) as u64;
            let r = ctx.client.round_start(&s, &sel, deadline, request, &[0.5, 0.9]).await?;
            ctx.changed();
            let mut data = rounds_data(&ctx)?;
            data["notice"] = json!(format!(
                "{}: {} ({} {})",
                i18n::strings(lang)["round_started"],
                &r.round[..r.round.len().min(8)],
                r.targets,
                i18n::strings(lang)["targets"]
            ));
            Ok(data)
        },
    )
    .await
}

fn drill_files(app: &App) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for d in &app.drills {
        if d.is_file() {
            out.push(d.clone());
            continue;
        }
        if let Ok(rd) = std::fs::read_dir(d) {
            let mut v: Vec<_> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "record"))
                .collect();
            v.sort();
            out.extend(v);
        }
    }
    out.truncate(500);
    out
}

async fn drills(State(app): State<App>, Extension(sess): Extension<Sess>) -> Response {
    let names: Vec<String> = drill_files(&app).iter().map(|p| p.display().to_string()).collect();
    page(
        app,
        sess,
        "/drills".into(),
        "drills",
        "drills.html",
        move |_, _| async move { Ok(json!({"title": "", "drills": names})) },
    )
    .await
}

async fn drill(State(app): State<App>, Extension(sess): Extension<Sess>, Path(n): Path<usize>) -> Response {
    let file = drill_files(&app).get(n).cloned();
    let path = format!("/drills/{n}");
    page(app, sess, path, "drills", "drill.html", move |_, _| async move {
        let file = file.ok_or_else(|| Error::UnknownMessage(format!("drill {n}")))?;
        let name = file.display().to_string();
        let bytes = std::fs::read(&file).map_err(|e| Error::Io {
            context: format!("cannot read {name}"),
            source: e,
        })?;
        // Verified from the signed record every time, like `pocnet drill verify`.
        Ok(match pocnet_core::drill::verify_drill(&bytes, None) {
            Ok((_, report)) => json!({"title": "", "file": name, "d": report, "problem_drill": Value::Null}),
            Err(e) => json!({"title": "", "file": name, "d": Value::Null, "problem_drill": e.to_string()}),
        })
    })
    .await
}

async fn incident(State(app): State<App>, Extension(sess): Extension<Sess>, Path(id): Path<String>) -> Response {
    let path = format!("/incidents/{id}");
    page(app, sess, path, "alerts", "incident.html", move |ctx, _| async move {
        let t = ctx.client.incident(&id)?;
        Ok(json!({"title": "", "t": t.json()}))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::directory::Trust;

    fn page_html(template: &str, data: Value) -> String {
        let base = base_context(Lang::En, "c0ffee", "CL.primary", Role::Poc, true, "/", "home", &[]);
        draw(&environment(), template, base, data).unwrap()
    }

    #[test]
    fn every_word_a_template_asks_for_exists_in_every_language() {
        let keys = i18n::strings(Lang::En);
        for (name, src) in TEMPLATES {
            for part in src.split("tr.").skip(1) {
                let key: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(keys.contains_key(key.as_str()), "{name} asks for tr.{key}");
            }
        }
        // Keys built from values: every alert POC state and every trust step.
        for st in [
            "held",
            "released",
            "delivered",
            "read",
            "acknowledged",
            "not_needed",
            "unreached",
            "stopped",
        ] {
            assert!(keys.contains_key(format!("st_{st}").as_str()), "st_{st}");
        }
        for t in [Trust::Attested, Trust::VoiceVerified, Trust::Changed] {
            let k = serde_json::to_value(t).unwrap().as_str().unwrap().replace('-', "_");
            assert!(keys.contains_key(format!("trust_{k}").as_str()), "trust_{k}");
        }
    }

    const HOSTILE: &str = "<img src=x onerror=alert(1)>\"'><script>alert(2)</script>";

    #[test]
    fn text_from_other_parties_is_escaped_in_every_place_it_appears() {
        let m = json!({
            "id": "00ff", "direction": "in", "peer": HOSTILE, "peer_unverified": true, "recipients": [HOSTILE],
            "subject": HOSTILE, "body": HOSTILE, "tlp": "TLP:AMBER", "tlp_class": "amber", "exercise": true,
            "alert": false, "created_at": 1, "received_at": 2, "read_at": null,
            "attachments": [{"name": HOSTILE, "size": 1, "state": "kept"}],
        });
        let html = page_html("message.html", json!({"m": m, "tlp_meaning": "x", "incident": HOSTILE}));
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        let dir = json!({"states": [{"code": "CL", "authority": HOSTILE, "pocs": [{
            "handle": HOSTILE, "name": HOSTILE, "position": HOSTILE, "institution": HOSTILE, "email": HOSTILE,
            "phones": [HOSTILE], "trust": "attested", "stale": true, "confirmed": HOSTILE, "fingerprint": "ab".repeat(32),
        }]}], "log_size": 3, "origin": HOSTILE});
        let html = page_html("directory.html", dir);
        assert!(
            !html.contains("<img src=x") && !html.contains("<script>alert"),
            "{html}"
        );
        // An attribute cannot be closed from inside a value.
        assert!(!html.contains("data-handle=\"<"), "{html}");
    }

    #[test]
    fn durations_read_plainly() {
        assert_eq!(duration(45_000), "45 s");
        assert_eq!(duration(12 * 60_000), "12 min");
        assert_eq!(duration(3 * 3_600_000 + 5 * 60_000), "3 h 05 min");
        assert_eq!(duration(2 * 86_400_000 + 4 * 3_600_000), "2 d 4 h");
    }
}
