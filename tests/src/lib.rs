//! Helpers for end-to-end tests: run the real `pocnet-relay` and `pocnet` binaries
//! against a relay on 127.0.0.1 with a port chosen by the OS.
#![forbid(unsafe_code)]

pub mod bench;
pub mod probe;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// Passphrase used for every test key.
pub const PASS: &str = "test passphrase for pocnet";

/// Path of a workspace binary, built by `cargo test --workspace` (or, for the load tools in
/// `src/bin`, by `cargo build --release -p pocnet -p pocnet-tests`: beside the tool itself).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let here = exe.parent().expect("executable's folder");
    if here.join(name).is_file() {
        return here.join(name);
    }
    let dir = here.parent().expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built: run the tests with `cargo test --workspace`",
        p.display()
    );
    p
}

/// A relay process with its data directory, and the directory it serves: the
/// Secretariat's profile (which began the log) and the national authorities enrolled so far.
pub struct Relay {
    /// Data directory (kept across restarts).
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Pinned fingerprint.
    pub fingerprint: String,
    /// The Secretariat's profile.
    pub secretariat: Poc,
    /// The directory key (the Secretariat's C2SP verifier key).
    pub vkey: String,
    authorities: std::cell::RefCell<std::collections::HashMap<String, std::rc::Rc<Poc>>>,
    child: Option<Child>,
}

/// A POC's details for a nomination (`national nominate` flags).
pub fn contact_args(name: &str) -> Vec<String> {
    [
        "--name",
        name,
        "--position",
        "Cyber policy coordinator",
        "--institution",
        "National Cybersecurity Agency",
        "--email",
        "poc@example.gov",
        "--phone",
        "+1 555 0100",
        "--language",
        "es",
        "--time-zone",
        "America/Santiago",
        "--hours",
        "Mon-Fri 09:00-18:00",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn relay_cmd(dir: &Path) -> Command {
    let mut c = Command::new(bin("pocnet-relay"));
    c.env("POCNET_RELAY_PASSPHRASE", "relay test passphrase")
        .env("POCNET_RELAY_DATA", dir)
        .env(
            "POCNET_LOG",
            std::env::var("POCNET_RELAY_TEST_LOG").unwrap_or("warn".into()),
        );
    c
}

impl Relay {
    /// The Secretariat begins a directory (`secretariat genesis`, with these extra
    /// arguments), the relay is initialised for it and served on 127.0.0.1:0 with extra
    /// `relay.toml` lines, and the Secretariat publishes the genesis (`enrol`).
    pub fn start_directory(config: &str, genesis: &[&str]) -> Relay {
        let secretariat = Poc::new();
        let mut g = vec!["secretariat", "genesis", "--origin", "test.pocnet/directory"];
        g.extend_from_slice(genesis);
        let vkey = secretariat.json(&g)["directory"].as_str().unwrap().to_string();
        let dir = tempfile::tempdir().expect("tempdir");
        let out = relay_cmd(dir.path())
            .args(["init", "--directory", &vkey])
            .output()
            .expect("relay init");
        assert!(
            out.status.success(),
            "relay init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if !config.is_empty() {
            let path = dir.path().join("relay.toml");
            let mut text = std::fs::read_to_string(&path).unwrap();
            for line in config.lines() {
                let key = line.split('=').next().unwrap().trim();
                text = text
                    .lines()
                    .filter(|l| l.split('=').next().unwrap().trim() != key)
                    .collect::<Vec<_>>()
                    .join("\n");
                text.push('\n');
                text.push_str(line);
                text.push('\n');
            }
            std::fs::write(&path, text).unwrap();
        }
        let mut r = Relay {
            dir,
            addr: "127.0.0.1:0".into(),
            fingerprint: String::new(),
            secretariat,
            vkey,
            authorities: Default::default(),
            child: None,
        };
        r.serve();
        r.secretariat.ok(&r.enrol_args(&[]));
        r
    }

    /// As [`Relay::start_directory`] with no extra configuration, for a directory whose
    /// genesis the Secretariat's own client cannot accept yet (it waits for witnesses):
    /// the genesis is published, whatever `enrol` then says.
    pub fn start_directory_unchecked(genesis: &[&str]) -> Relay {
        let secretariat = Poc::new();
        let mut g = vec!["secretariat", "genesis", "--origin", "test.pocnet/directory"];
        g.extend_from_slice(genesis);
        let vkey = secretariat.json(&g)["directory"].as_str().unwrap().to_string();
        let r = Relay::start_for(secretariat, &vkey);
        let _ = r.secretariat.run(&r.enrol_args(&[]));
        r
    }

    /// A relay for a directory begun elsewhere (the test plays the Secretariat in-process):
    /// initialised with `vkey` and served; nothing is published.
    pub fn start_for(secretariat: Poc, vkey: &str) -> Relay {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = relay_cmd(dir.path())
            .args(["init", "--directory", vkey])
            .output()
            .expect("relay init");
        assert!(
            out.status.success(),
            "relay init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut r = Relay {
            dir,
            addr: "127.0.0.1:0".into(),
            fingerprint: String::new(),
            secretariat,
            vkey: vkey.to_string(),
            authorities: Default::default(),
            child: None,
        };
        r.serve();
        r
    }

    /// Sends one request over a real connection as `identity` (for tests that act as a
    /// party in-process).
    pub fn request(
        &self,
        identity: &pocnet_crypto::Identity,
        req: pocnet_wire::Request,
    ) -> Result<pocnet_wire::Response, pocnet_client::Error> {
        let pin = pocnet_crypto::Fingerprint::parse(&self.fingerprint).unwrap();
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let s = pocnet_client::net::Session::connect(identity, &self.addr, pin).await?;
            let r = s.request(&req).await;
            s.close().await;
            r
        })
    }

    /// A directory with no witnesses, served with extra `relay.toml` lines.
    pub fn start_with(config: &str) -> Relay {
        Self::start_directory(config, &[])
    }

    /// Defaults, with a rate limit high enough for tests.
    pub fn start() -> Relay {
        Self::start_with("")
    }

    /// (Re)starts `serve` on the current address and waits for its "listening" line.
    pub fn serve(&mut self) {
        let mut child = relay_cmd(self.dir.path())
            .args(["serve", "--listen", &self.addr])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn relay");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("relay output");
        // "listening on 127.0.0.1:PORT fingerprint HEX"
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert!(
            parts.len() == 5 && parts[0] == "listening",
            "unexpected relay output {line:?}"
        );
        self.addr = parts[2].to_string();
        self.fingerprint = parts[4].to_string();
        self.child = Some(child);
    }

    /// The relay process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait: the graceful path.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let c = self.child.take().expect("running");
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        c.wait_with_output().unwrap().status
    }

    /// `pocnet enrol` arguments for this relay (address, pinned key, directory key), then `rest`.
    pub fn enrol_args<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec![
            "enrol",
            "--relay",
            &self.addr,
            "--relay-key",
            &self.fingerprint,
            "--directory",
            &self.vkey,
        ];
        a.extend_from_slice(rest);
        a
    }

    /// `state`'s national authority, enrolled by the Secretariat after the voice check
    /// (once per relay).
    pub fn authority(&self, state: &str) -> std::rc::Rc<Poc> {
        if let Some(a) = self.authorities.borrow().get(state) {
            return a.clone();
        }
        let a = Poc::new();
        a.ok(&self.enrol_args(&[]));
        let (fp, voice) = (a.fingerprint(), a.voice_code());
        self.secretariat.ok(&[
            "secretariat",
            "authority",
            "--state",
            state,
            "--fingerprint",
            &fp,
            "--name",
            &format!("{state} national authority"),
            "--institution",
            "Ministry of Foreign Affairs",
            "--heard",
            &voice,
        ]);
        a.ok(&self.enrol_args(&[]));
        let a = std::rc::Rc::new(a);
        self.authorities.borrow_mut().insert(state.to_string(), a.clone());
        a
    }

    /// `poc` is nominated by its state's authority as `STATE.role` (cyber policy; a role
    /// `further` is `further1`); returns the Secretariat's id for the nomination.
    pub fn nominate(&self, poc: &Poc, state: &str, role: &str) -> u64 {
        let rank = if role == "further" { "further1" } else { role };
        poc.ok(&self.enrol_args(&[]));
        let fp = poc.fingerprint();
        let mut args: Vec<String> = [
            "national",
            "nominate",
            "--fingerprint",
            &fp,
            "--category",
            "cyber",
            "--rank",
            rank,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(contact_args(&format!("{state} {role} POC")));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.authority(state).ok(&a);
        self.pending_nomination(&fp)
            .expect("the nomination waits for the Secretariat")
    }

    /// The id of the waiting nomination of `fingerprint`, if any.
    pub fn pending_nomination(&self, fingerprint: &str) -> Option<u64> {
        let pending = self.secretariat.json(&["secretariat", "pending"]);
        pending.as_array().unwrap().iter().find_map(|p| {
            (p["nominee"]["fingerprint"].as_str() == Some(fingerprint)).then(|| p["id"].as_u64().unwrap())
        })
    }

    /// Nominated, voice-checked, approved, and enrolled as `STATE.role`.
    pub fn list(&self, poc: &Poc, state: &str, role: &str) {
        let id = self.nominate(poc, state, role);
        let voice = poc.voice_code();
        self.secretariat
            .ok(&["secretariat", "approve", &id.to_string(), "--heard", &voice]);
        poc.ok(&self.enrol_args(&[]));
    }

    /// Runs an admin subcommand (`revoke`, `members`).
    pub fn admin(&self, args: &[&str]) -> Output {
        relay_cmd(self.dir.path()).args(args).output().unwrap()
    }

    /// The relay database, for tests that play a hostile relay.
    pub fn db(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.dir.path().join("relay.db")).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A POC profile driven through the `pocnet` binary.
pub struct Poc {
    /// Profile directory.
    pub home: tempfile::TempDir,
}

impl Poc {
    /// `pocnet init` (not enrolled).
    pub fn new() -> Poc {
        let p = Poc {
            home: tempfile::tempdir().unwrap(),
        };
        p.ok(&["init"]);
        p
    }

    /// `init`, then listed in the relay's directory as `STATE.role` (nominated by the
    /// state's authority, approved by the Secretariat after the voice check, enrolled).
    pub fn enrolled(relay: &Relay, state: &str, role: &str) -> Poc {
        let p = Poc::new();
        relay.list(&p, state, role);
        p
    }

    /// The key's fingerprint (hex).
    pub fn fingerprint(&self) -> String {
        self.json(&["whoami"])["fingerprint"].as_str().unwrap().to_string()
    }

    /// The key's voice code (as read aloud).
    pub fn voice_code(&self) -> String {
        self.json(&["whoami"])["voice_code"].as_str().unwrap().to_string()
    }

    /// A `pocnet` command for this profile.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("pocnet"));
        c.args(args)
            .env("POCNET_HOME", self.home.path())
            .env("POCNET_PASSPHRASE", PASS)
            .env("POCNET_LOG", "warn");
        c
    }

    /// Runs a command and returns its output, success or not.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs a command with `input` on standard input.
    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "pocnet {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "pocnet {args:?} should have failed; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// `--json` output parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Opens the profile as a library client.
    pub fn client(&self) -> pocnet_client::app::Client {
        pocnet_client::app::Client::open(self.home.path(), PASS.as_bytes()).unwrap()
    }
}

impl Default for Poc {
    fn default() -> Self {
        Poc::new()
    }
}
pub mod portal;
