//! The portal (`pocnet portal`), driven as its users drive it: a real headless Chromium
//! over WebDriver against the real binary, over a real relay. And its protections, with
//! raw HTTP requests whose every header the test chooses.

use std::time::Duration;

use fantoccini::{Client as Browser, Locator};
use pocnet_tests::portal::{http, Driver, Portal};
use pocnet_tests::{Poc, Relay};

/// Waits (bounded) until the element's text satisfies `ok`; returns the last text seen.
/// Polls the page the browser holds: no reload, so a live update must arrive by itself.
async fn wait_text(b: &Browser, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        if let Ok(e) = b.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if ok(&t) {
                    return t;
                }
                last = t;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never satisfied the condition; last text: {last:?}");
}

/// Picks a language in the header's form and submits it.
async fn choose_language(b: &Browser, tag: &str) {
    b.find(Locator::Css(&format!("#lang-select option[value=\"{tag}\"]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.find(Locator::Css("form.lang button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(b, "html", |_| true).await;
    let lang = b.find(Locator::Css("html")).await.unwrap().attr("lang").await.unwrap();
    assert_eq!(lang.as_deref(), Some(tag), "{}", b.source().await.unwrap());
}

/// With `POCNET_PORTAL_SHOTS=DIR`, saves a PNG of what the browser shows (for a person
/// to look at; nothing is asserted on pixels).
async fn shot(b: &Browser, name: &str) {
    if let Ok(dir) = std::env::var("POCNET_PORTAL_SHOTS") {
        let png = b.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

async fn sign_in(b: &Browser, p: &Portal) {
    b.goto(&p.url).await.unwrap();
    let me = b.find(Locator::Id("me")).await.unwrap().text().await.unwrap();
    assert!(!me.is_empty(), "signed in: the header names the profile");
}

#[test]
fn the_portal_refuses_a_missing_or_wrong_token_another_host_another_origin_and_a_missing_csrf_token() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let _us = Poc::enrolled(&relay, "US", "primary");
    let portal = Portal::start(&cl, &[]);
    let port = portal.port;
    let host = format!("Host: 127.0.0.1:{port}");

    // No session: nothing but a pointer to the sign-in link.
    let r = http(port, &format!("GET /directory HTTP/1.1\r\n{host}"), "");
    assert_eq!(r.status, 401);
    assert!(!r.body.contains("CL."), "no directory data without a session");

    // A wrong token.
    let wrong = "0".repeat(64);
    let r = http(port, &format!("GET /login?token={wrong} HTTP/1.1\r\n{host}"), "");
    assert_eq!(r.status, 403);
    assert!(r.header("set-cookie").is_none());

    // The right token under another Host (a DNS-rebinding page): refused, token not spent.
    let token = portal.token();
    let r = http(
        port,
        &format!("GET /login?token={token} HTTP/1.1\r\nHost: attacker.example:{port}"),
        "",
    );
    assert_eq!(r.status, 421);

    // The right token: a session cookie, HttpOnly and SameSite=Strict.
    let r = http(port, &format!("GET /login?token={token} HTTP/1.1\r\n{host}"), "");
    assert_eq!(r.status, 303, "{r:?}");
    let set = r.header("set-cookie").expect("a session cookie").to_string();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();

    // The token works once.
    let r = http(port, &format!("GET /login?token={token} HTTP/1.1\r\n{host}"), "");
    assert_eq!(r.status, 403, "a used token is refused");

    // With the session: the page, under a strict CSP.
    let r = http(
        port,
        &format!("GET /directory HTTP/1.1\r\n{host}\r\nCookie: {cookie}"),
        "",
    );
    assert_eq!(r.status, 200);
    assert!(r.body.contains("US.primary"), "the directory is shown");
    let csp = r.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));

    // The same cookie under another Host: refused (rebinding after sign-in).
    let r = http(
        port,
        &format!("GET /directory HTTP/1.1\r\nHost: attacker.example:{port}\r\nCookie: {cookie}"),
        "",
    );
    assert_eq!(r.status, 421);

    // The CSRF token is in the session's forms.
    let page = http(port, &format!("GET /send HTTP/1.1\r\n{host}\r\nCookie: {cookie}"), "");
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a CSRF token in the form")
        .to_string();
    assert_eq!(csrf.len(), 64);

    let post = |extra: &str, body: &str| {
        http(
            port,
            &format!(
                "POST /send HTTP/1.1\r\n{host}\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded{extra}"
            ),
            body,
        )
    };
    let form = "to=US&tlp=green&subject=should+not+go&text=x";
    // Without the CSRF token, with a wrong one, from another origin, from a cross-site fetch.
    assert_eq!(post("", form).status, 403);
    assert_eq!(post("", &format!("csrf={}&{form}", "a".repeat(64))).status, 403);
    assert_eq!(
        post("\r\nOrigin: http://attacker.example", &format!("csrf={csrf}&{form}")).status,
        403
    );
    assert_eq!(
        post("\r\nSec-Fetch-Site: cross-site", &format!("csrf={csrf}&{form}")).status,
        403
    );
    // Without a session at all, even with the token.
    let r = http(
        port,
        &format!("POST /send HTTP/1.1\r\n{host}\r\nContent-Type: application/x-www-form-urlencoded"),
        &format!("csrf={csrf}&{form}"),
    );
    assert_eq!(r.status, 401);
    let sent = http(
        port,
        &format!("GET /messages?box=out HTTP/1.1\r\n{host}\r\nCookie: {cookie}"),
        "",
    );
    assert!(!sent.body.contains("should not go"), "no refused request sent anything");

    // The same request, from this origin with the token: sent.
    let ok = post(
        &format!("\r\nOrigin: http://127.0.0.1:{port}\r\nSec-Fetch-Site: same-origin"),
        &format!("csrf={csrf}&to=US&tlp=green&subject=from+the+portal&text=hello"),
    );
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("class=\"notice\""), "{}", ok.body);
    let sent = http(
        port,
        &format!("GET /messages?box=out HTTP/1.1\r\n{host}\r\nCookie: {cookie}"),
        "",
    );
    assert!(sent.body.contains("from the portal"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_real_browser_a_poc_reads_the_directory_acknowledges_an_alert_the_sender_sees_it_live_and_answers_a_round()
{
    let relay = Relay::start();
    let us = Poc::enrolled(&relay, "US", "primary");
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let _cl2 = Poc::enrolled(&relay, "CL", "alternate");
    let sec = &relay.secretariat;

    // A message whose subject and body are HTML, sent before the portal starts.
    let hostile = "<img src=x onerror=alert(1)><b id=\"pwn\">bold</b>";
    us.ok(&[
        "send",
        "CL.primary",
        "--subject",
        hostile,
        "--message",
        "<script>alert(2)</script>",
        "--tlp",
        "amber",
    ]);

    // US's national authority publishes its strategy; the Secretariat lists it in the log.
    let work = tempfile::tempdir().unwrap();
    let original = work.path().join("strategy.pdf");
    let content = "%PDF-1.7 National Cybersecurity Strategy of the United States (test edition)\n".repeat(200);
    std::fs::write(&original, &content).unwrap();
    let en_title = "National <i>Cybersecurity</i> Strategy";
    relay.authority("US").json(&[
        "policy",
        "publish",
        original.to_str().unwrap(),
        "--title",
        "Estrategia Nacional de Ciberseguridad",
        "--title",
        &format!("en={en_title}"),
        "--type",
        "strategy",
        "--date",
        "2024-03-15",
        "--lang",
        "es",
    ]);
    sec.json(&["secretariat", "publish"]);

    let driver = Driver::start();
    let cl_portal = Portal::start(&cl, &[]);
    let us_portal = Portal::start(&us, &[]);
    let downloads = tempfile::tempdir().unwrap();
    let b = driver.browser_downloading_to(Some(downloads.path())).await;
    let sender = driver.browser().await;

    // Sign in with the token; read the directory.
    sign_in(&b, &cl_portal).await;
    b.goto(&format!("{}/directory", cl_portal.base)).await.unwrap();
    let row = b
        .find(Locator::Css("tr[data-handle=\"US.primary\"]"))
        .await
        .expect("the US POC is listed");
    // In the POC's own language, from the directory (Spanish here), until they choose.
    let text = row.text().await.unwrap();
    assert!(
        text.contains("atestado"),
        "the trust ladder is shown, in Spanish: {text}"
    );
    choose_language(&b, "en").await;
    wait_text(&b, "nav", |t| t.contains("Directory")).await;
    let row = b.find(Locator::Css("tr[data-handle=\"US.primary\"]")).await.unwrap();
    let text = row.text().await.unwrap();
    assert!(text.contains("attested"), "the trust ladder is shown: {text}");

    // The hostile subject renders as text: no element made from it.
    b.goto(&format!("{}/messages", cl_portal.base)).await.unwrap();
    let mut link = None;
    for a in b.find_all(Locator::Css("a.subject")).await.unwrap() {
        if a.text().await.unwrap() == hostile {
            link = Some(a);
        }
    }
    link.expect("the hostile subject is listed, as text")
        .click()
        .await
        .unwrap();
    let subject = wait_text(&b, "#subject", |t| !t.is_empty()).await;
    assert_eq!(subject, hostile, "the subject is shown as the text it is");
    assert!(
        b.find_all(Locator::Css("#pwn")).await.unwrap().is_empty(),
        "no element injected"
    );
    assert!(b.find_all(Locator::Css("main img")).await.unwrap().is_empty());
    let body = b.find(Locator::Id("body")).await.unwrap().text().await.unwrap();
    assert_eq!(body, "<script>alert(2)</script>");
    let tlp = b
        .find(Locator::Css(".tlp-line .tlp"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(tlp, "TLP:AMBER");
    shot(&b, "message").await;

    // An alert to CL; the sender watches its status page.
    let id = us.json(&[
        "alert",
        "raise",
        "--to",
        "CL",
        "--headline",
        "SCL airport: ATC systems degraded",
        "--description",
        "Ransomware on the tower systems.",
        "--ack-within",
        "10m",
        "--repeat",
        "0",
        "--incident",
        "SCL-1",
    ])["id"]
        .as_str()
        .unwrap()
        .to_string();
    sign_in(&sender, &us_portal).await;
    sender.goto(&format!("{}/alerts/{id}", us_portal.base)).await.unwrap();
    // (The sender reads Spanish: the state is checked by its class, not its words.)
    let cell = "#status tr[data-handle=\"CL.primary\"] td.state";
    let acked = "#status tr.st-acknowledged[data-handle=\"CL.primary\"]";
    wait_text(&sender, cell, |t| !t.is_empty()).await;
    assert!(sender.find_all(Locator::Css(acked)).await.unwrap().is_empty());

    // The recipient sees it above everything, and acknowledges it.
    b.goto(&format!("{}/", cl_portal.base)).await.unwrap();
    let banner = wait_text(&b, ".alarm", |t| t.contains("SCL airport")).await;
    assert!(banner.contains("SCL airport"));
    b.goto(&format!("{}/alerts/{id}", cl_portal.base)).await.unwrap();
    let state = b.find(Locator::Id("ack-state")).await.unwrap().text().await.unwrap();
    assert!(state.contains("NOT ACKNOWLEDGED"), "{state}");
    b.find(Locator::Id("note"))
        .await
        .unwrap()
        .send_keys("CSIRT engaged")
        .await
        .unwrap();
    b.find(Locator::Id("ack-button")).await.unwrap().click().await.unwrap();
    let state = wait_text(&b, "#ack-state", |t| t.starts_with("Acknowledged")).await;
    assert!(state.starts_with("Acknowledged"));

    // The sender's open page changes by itself.
    let after = wait_text(&sender, acked, |_| true).await;
    shot(&sender, "alert-status").await;
    assert!(after.contains("acuse de recibo"), "{after}");
    // The incident's timeline holds the alert and the acknowledgement.
    sender
        .goto(&format!("{}/incidents/SCL-1", us_portal.base))
        .await
        .unwrap();
    let timeline = wait_text(&sender, "main table", |t| t.contains("SCL airport")).await;
    assert!(timeline.contains("CL.primary"), "{timeline}");

    // A contact check from the Secretariat, answered in the portal.
    let round = sec.json(&["round", "start", "--state", "CL", "--deadline-hours", "24"])["round"]
        .as_str()
        .unwrap()
        .to_string();
    b.goto(&format!("{}/rounds", cl_portal.base)).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if !b.find_all(Locator::Css("form.round-answer")).await.unwrap().is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the challenge never reached the portal"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.refresh().await.unwrap();
    }
    let form = b.find(Locator::Css("form.round-answer")).await.unwrap();
    form.find(Locator::Css("textarea"))
        .await
        .unwrap()
        .send_keys("all details correct")
        .await
        .unwrap();
    form.find(Locator::Css("button.answer-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&b, ".notice", |t| t.contains("Answered")).await;
    assert!(b.find_all(Locator::Css("form.round-answer")).await.unwrap().is_empty());
    // The Secretariat holds the signed answer.
    sec.ok(&["inbox"]);
    let list = sec.json(&["round", "list"]);
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[0] == round.as_str())
        .unwrap_or_else(|| panic!("round {round} in {list}"));
    assert_eq!(entry[2], 1, "one answer recorded: {entry}");

    // The policy repository: the document as the log lists it, downloaded by the browser,
    // then verified against the log by another POC's client.
    b.goto(&format!("{}/policies", cl_portal.base)).await.unwrap();
    let title = wait_text(&b, "a.policy-title", |t| !t.is_empty()).await;
    assert_eq!(title, en_title, "the English title, as text");
    b.find(Locator::Css("a.policy-title"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let version = wait_text(&b, "table.history tr.current th", |t| !t.is_empty()).await;
    assert!(version.starts_with('1'), "{version}");
    b.find(Locator::Css("a.download")).await.unwrap().click().await.unwrap();
    let saved = downloads.path().join("strategy.pdf");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !(saved.exists() && std::fs::read(&saved).map(|b| b.len() == content.len()).unwrap_or(false)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the browser never saved the download"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(std::fs::read(&saved).unwrap(), content.as_bytes());
    let says = _cl2.ok(&["policy", "verify", saved.to_str().unwrap()]);
    assert!(says.contains("US's national authority published version 1"), "{says}");

    // French, chosen in the page, with the keyboard.
    choose_language(&b, "fr").await;
    let nav = wait_text(&b, "nav", |t| t.contains("Annuaire")).await;
    assert!(nav.contains("Vérifications de contact"));
    b.goto(&format!("{}/directory", cl_portal.base)).await.unwrap();
    shot(&b, "directory-fr").await;

    // On a phone's width nothing spills sideways (wide tables scroll inside their box),
    // and the first Tab from the top lands on "skip to content".
    b.set_window_size(390, 844).await.unwrap();
    for page in [
        "/",
        "/directory",
        "/messages",
        &format!("/alerts/{id}"),
        "/rounds",
        "/policies",
    ] {
        b.goto(&format!("{}{page}", cl_portal.base)).await.unwrap();
        let fits = b
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            fits,
            serde_json::Value::Bool(true),
            "{page} is wider than a phone screen"
        );
        if page.starts_with("/alerts/") {
            shot(&b, "alert-phone").await;
        }
    }
    b.find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("\u{E004}")
        .await
        .unwrap();
    let focused = b
        .execute("return document.activeElement.className;", vec![])
        .await
        .unwrap();
    assert_eq!(focused, serde_json::json!("skip"), "keyboard users can skip the header");

    b.close().await.unwrap();
    sender.close().await.unwrap();
}

/// The `csrf` value of the first form on a page.
fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a CSRF token in the page")
        .to_string()
}

#[test]
fn the_secretariat_starts_a_contact_check_from_the_portal_and_a_poc_cannot() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let sec = Portal::start(&relay.secretariat, &[]);
    let cookie = sec.sign_in();
    let page = sec.get(&cookie, "/rounds");
    assert!(
        page.body.contains("id=\"start-round\""),
        "the Secretariat is offered the form"
    );
    let csrf = csrf_of(&page.body);
    let post = |p: &Portal, cookie: &str, body: &str| {
        http(
            p.port,
            &format!(
                "POST /rounds/start HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: {cookie}\r\nOrigin: http://127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded",
                p.port, p.port
            ),
            body,
        )
    };
    let r = post(
        &sec,
        &cookie,
        &format!("csrf={csrf}&states=CL&hours=24&question=Is+your+24%2F7+line+staffed%3F&exercise=1"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Round started"), "{}", r.body);
    // Its report, with the chart, from the rounds page.
    let id = r
        .body
        .split("href=\"/rounds/")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .expect("the round is listed")
        .to_string();
    let report = sec.get(&cookie, &format!("/rounds/{id}"));
    assert_eq!(report.status, 200);
    assert!(report.body.contains("<svg class=\"chart\""), "a chart");
    assert!(
        report.body.contains("<th scope=\"row\">CL.primary</th>"),
        "{}",
        report.body
    );
    drop(sec);

    // The POC has the challenge, with the question, marked as an exercise.
    cl.ok(&["inbox"]);
    let pending = cl.json(&["round", "pending"]);
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");

    // A POC's portal offers no such form, and refuses the request even with its own token.
    let mine = Portal::start(&cl, &[]);
    let cookie = mine.sign_in();
    let page = mine.get(&cookie, "/rounds");
    assert!(!page.body.contains("id=\"start-round\""));
    assert!(page.body.contains("line staffed?"), "the question is shown to answer");
    assert!(page.body.contains("class=\"exercise\""), "and marked as an exercise");
    let r = post(
        &mine,
        &cookie,
        &format!("csrf={}&states=CL&hours=24", csrf_of(&page.body)),
    );
    assert_eq!(r.status, 422);
    assert!(r.body.contains("only the Secretariat starts rounds"), "{}", r.body);
}

#[test]
fn a_changed_key_blocks_sending_from_the_portal_as_in_the_cli() {
    let relay = Relay::start();
    let cl = Poc::enrolled(&relay, "CL", "primary");
    let mx = Poc::enrolled(&relay, "MX", "primary");
    cl.ok(&["send", "MX.primary", "-m", "hello"]);
    mx.ok(&["inbox"]);
    mx.ok(&["send", "CL.primary", "-m", "hello back"]);
    // CL's key is revoked and a new key listed for the same handle.
    relay
        .authority("CL")
        .ok(&["national", "revoke", "CL.primary", "--reason", "lost"]);
    relay.secretariat.ok(&["secretariat", "publish"]);
    let _new_cl = Poc::enrolled(&relay, "CL", "primary");

    let portal = Portal::start(&mx, &[]);
    let cookie = portal.sign_in();
    let dir = portal.get(&cookie, "/directory");
    assert!(
        dir.body
            .contains("class=\"poc trust-changed\" data-handle=\"CL.primary\""),
        "the directory shows the change"
    );
    let form = portal.get(&cookie, "/send");
    let r = http(
        portal.port,
        &format!(
            "POST /send HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nCookie: {cookie}\r\nOrigin: http://127.0.0.1:{p}\r\nContent-Type: application/x-www-form-urlencoded",
            p = portal.port
        ),
        &format!("csrf={}&to=CL.primary&tlp=amber&subject=to+the+new+key&text=x", csrf_of(&form.body)),
    );
    assert_eq!(r.status, 200);
    assert!(r.body.contains("class=\"problem\""), "{}", r.body);
    assert!(r.body.contains("pocnet verify CL.primary --accept"), "{}", r.body);
    let out = portal.get(&cookie, "/messages?box=out");
    assert!(!out.body.contains("to the new key"), "nothing was sent");
}
