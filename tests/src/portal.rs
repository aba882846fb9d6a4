//! The portal under test: a `pocnet portal` process, a raw HTTP/1.1 client for the
//! protection tests (so each header is exactly what we send), and a real headless
//! Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Poc;

/// Where Debian puts them.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Where Debian puts the matching driver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A running `pocnet portal` for one profile.
pub struct Portal {
    child: Child,
    /// The sign-in link with the one-time token.
    pub url: String,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The port.
    pub port: u16,
}

impl Portal {
    /// Starts the portal for `poc` and waits for its sign-in line (printed once the first
    /// sync with the relay has caught up).
    pub fn start(poc: &Poc, extra: &[&str]) -> Portal {
        let mut args = vec!["portal"];
        args.extend_from_slice(extra);
        Portal::spawn(poc.cmd(&args))
    }

    /// Starts the portal for the profile at `home` (unlocked with `passphrase`).
    pub fn start_at(home: &Path, passphrase: &str, extra: &[&str]) -> Portal {
        let mut c = Command::new(crate::bin("pocnet"));
        c.arg("portal")
            .args(extra)
            .env("POCNET_HOME", home)
            .env("POCNET_PASSPHRASE", passphrase)
            .env("POCNET_LOG", "warn");
        Portal::spawn(c)
    }

    /// Signs in with raw HTTP; returns the `Cookie` header value.
    pub fn sign_in(&self) -> String {
        let r = http(
            self.port,
            &format!(
                "GET /login?token={} HTTP/1.1\r\nHost: 127.0.0.1:{}",
                self.token(),
                self.port
            ),
            "",
        );
        assert_eq!(r.status, 303, "{r:?}");
        r.header("set-cookie").unwrap().split(';').next().unwrap().to_string()
    }

    /// GET `path` with the session cookie.
    pub fn get(&self, cookie: &str, path: &str) -> Reply {
        http(
            self.port,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: {cookie}",
                self.port
            ),
            "",
        )
    }

    fn spawn(mut cmd: Command) -> Portal {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start pocnet portal");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).expect("portal output");
        let url = line
            .trim()
            .strip_prefix("portal: ")
            .unwrap_or_else(|| panic!("unexpected first line from the portal: {line:?}"))
            .to_string();
        // Keep draining stdout so the portal never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        let rest = url.strip_prefix("http://127.0.0.1:").expect("a loopback URL");
        let port: u16 = rest.split('/').next().unwrap().parse().unwrap();
        Portal {
            child,
            base: format!("http://127.0.0.1:{port}"),
            url,
            port,
        }
    }

    /// The token from the sign-in link.
    pub fn token(&self) -> String {
        self.url.split("token=").nth(1).unwrap().to_string()
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One raw HTTP/1.1 exchange.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Header lines (`name: value`, names lower-cased).
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
}

impl Reply {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Sends exactly `head` (request line and headers, without the final blank line) and
/// `body` to 127.0.0.1:`port`, and reads the whole answer (`Connection: close`).
pub fn http(port: u16, head: &str, body: &str) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the portal");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = format!(
        "{head}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    // Up to the end of the headers, then Content-Length bytes (or to the close).
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => 0,
            Err(e) => panic!("reading the answer: {e}"),
        };
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if let Some(len) = len {
                if raw.len() >= end + 4 + len {
                    break;
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Chromium and its driver, or the one line that installs them.
pub fn require_chromium() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        panic!(
            "the portal tests drive a real headless Chromium, which is not installed: \
             run `apt-get install -y chromium chromium-driver` (as root), or `bash scripts/test`, which installs it"
        );
    }
}

/// A chromedriver process and the Chromium sessions it starts.
pub struct Driver {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _profiles: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver on a free loopback port and waits until it answers.
    pub fn start() -> Driver {
        require_chromium();
        for _ in 0..5 {
            let port = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            let mut child = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let r = http(port, "GET /status HTTP/1.1\r\nHost: 127.0.0.1", "");
                    if r.status == 200 && r.body.contains("\"ready\":true") {
                        return Driver {
                            child,
                            url: format!("http://127.0.0.1:{port}"),
                            _profiles: tempfile::tempdir().unwrap(),
                        };
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("chromedriver did not start on a free port");
    }

    /// A new headless Chromium session with its own empty profile.
    pub async fn browser(&self) -> fantoccini::Client {
        self.browser_downloading_to(None).await
    }

    /// As [`Driver::browser`], saving downloads into `dir` without asking.
    pub async fn browser_downloading_to(&self, downloads: Option<&Path>) -> fantoccini::Client {
        let dir = tempfile::Builder::new()
            .prefix("chromium-")
            .tempdir_in(self._profiles.path())
            .unwrap()
            .keep();
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", dir.display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.map(|d| d.display().to_string()).unwrap_or_default(),
                    "download.prompt_for_download": false,
                    "safebrowsing.enabled": false,
                },
            }
        });
        let caps = match caps {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        };
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session from chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Any Chromium left behind (a test that panicked before closing its session):
        // each was started with a profile inside our own temporary folder.
        let _ = Command::new("pkill")
            .args(["-9", "-f", &self._profiles.path().display().to_string()])
            .status();
    }
}
