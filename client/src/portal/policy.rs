//! The policy repository's pages: the documents the verified directory log lists, their
//! history, and the files, served only after their SHA-256 matches the log entry.

use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::pages::{error_page, page};
use super::{App, Sess};
use crate::ops::policy::{PolicyDocument, PolicyView};

/// The title in the reader's language if the publisher gave one, else the first.
fn title_in(v: &PolicyView, lang: &str) -> (String, String) {
    v.titles
        .iter()
        .find(|(l, _)| l == lang)
        .or_else(|| v.titles.first())
        .map(|(l, t)| (t.clone(), l.clone()))
        .unwrap_or_else(|| (v.file_name.clone(), v.language.clone()))
}

fn doc_row(d: &PolicyDocument, lang: &str) -> Value {
    let v = &d.current;
    let (title, title_lang) = title_in(v, lang);
    json!({
        "document": v.document, "state": v.state, "title": title, "title_lang": title_lang, "kind": v.kind,
        "date": v.date, "version": v.version, "published_ms": v.published_ms, "held": v.held,
    })
}

pub(crate) async fn policies(State(app): State<App>, Extension(sess): Extension<Sess>) -> Response {
    page(
        app,
        sess,
        "/policies".into(),
        "policies",
        "policies.html",
        |ctx, lang| async move {
            let c = &ctx.client;
            // A newly listed version is in the log.
            ctx.refresh_directory().await;
            let docs: Vec<Value> = c.policies(None)?.iter().map(|d| doc_row(d, lang.tag())).collect();
            let reminders = c.policy_reminders(crate::now_ms())?;
            Ok(json!({"title": "", "docs": docs, "reminders": reminders}))
        },
    )
    .await
}

/// A document id is hex: anything else is refused before any lookup.
fn hex_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_hexdigit())
}

pub(crate) async fn policy(
    State(app): State<App>,
    Extension(sess): Extension<Sess>,
    Path(doc): Path<String>,
) -> Response {
    let path = format!("/policies/{doc}");
    page(
        app,
        sess,
        path,
        "policies",
        "policy.html",
        move |ctx, lang| async move {
            if !hex_id(&doc) {
                return Err(crate::Error::Usage("a document id is hexadecimal".into()));
            }
            let d = ctx.client.policy(&doc)?;
            let (title, title_lang) = title_in(&d.current, lang.tag());
            Ok(json!({"title": title, "title_lang": title_lang, "doc": d}))
        },
    )
    .await
}

#[derive(Deserialize)]
pub(crate) struct FileQuery {
    version: Option<u32>,
}

/// Only letters, digits, dot, dash and underscore survive into the download's name.
fn download_name(name: &str) -> String {
    let n: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    let n = n.trim_start_matches('.').to_string();
    if n.is_empty() {
        "document".into()
    } else {
        n
    }
}

/// The file, checked against the log's SHA-256 and size by `policy_file`, sent as a
/// download that the browser will neither render nor sniff nor run in this origin.
pub(crate) async fn policy_file(
    State(app): State<App>,
    Extension(sess): Extension<Sess>,
    Path(doc): Path<String>,
    Query(q): Query<FileQuery>,
) -> Response {
    let path = format!("/policies/{doc}");
    if !hex_id(&doc) {
        return error_page(
            &app,
            &sess,
            &path,
            "policies",
            &[],
            &crate::Error::Usage("a document id is hexadecimal".into()),
        );
    }
    let r = app
        .handle
        .run(move |ctx| async move { ctx.client.policy_file(&doc, q.version) })
        .await;
    match r {
        Ok((v, bytes)) => {
            let name = download_name(&v.file_name);
            let mut res = (StatusCode::OK, bytes).into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox; default-src 'none'"),
            );
            if let Ok(v) = HeaderValue::from_str(&v.sha256) {
                h.insert("x-pocnet-sha256", v);
            }
            res
        }
        Err(e) => error_page(&app, &sess, &path, "policies", &[], &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_name_from_a_publisher_cannot_break_the_header_or_hide_as_a_dotfile() {
        assert_eq!(download_name("strategy 2026.pdf"), "strategy_2026.pdf");
        assert_eq!(
            download_name("a\"; filename=x.html\r\nX: y"),
            "a___filename_x.html__X__y"
        );
        assert_eq!(download_name("../../.bashrc"), "_.._.bashrc");
        assert_eq!(download_name(".."), "document");
        assert_eq!(download_name(""), "document");
    }
}
