//! A drill's network: a local relay process on 127.0.0.1 and a simulated set of POCs, enrolled
//! through the real flows — the Secretariat begins the directory, enrols each state's national
//! authority after the voice check, each authority nominates its POCs, the Secretariat approves
//! each after hearing its voice code — every party with its own key, profile and store.
//!
//! Simulated parties "hear" each other's voice codes by reading them from the other's key: the
//! check runs exactly as on a phone call, only the call is skipped. Their key files use the
//! cheapest Argon2id cost the format accepts (they are throwaway drill keys in a directory the
//! drill owns), which keeps enrolling 100+ parties within seconds.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use pocnet_core::directory::{Category, Contact, Rank};
use pocnet_crypto::KdfParams;

use crate::app::{Client, Enrolment};
use crate::error::{Error, Result};
use crate::profile::Profile;

/// The passphrase of every simulated party's key file (throwaway drill keys).
pub const DRILL_PASSPHRASE: &str = "pocnet drill: throwaway simulated key";
/// The cheapest Argon2id cost the key-file format accepts.
pub const DRILL_KDF: KdfParams = KdfParams {
    m_cost_kib: 8 * 1024,
    t_cost: 1,
    p_cost: 1,
};
/// The relay's key-file passphrase in a drill directory.
const RELAY_PASSPHRASE: &str = "pocnet drill relay";

/// A relay process serving a drill directory.
pub struct RelayProcess {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Its fingerprint (hex).
    pub fingerprint: String,
}

fn relay_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("POCNET_RELAY_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| Error::Io {
        context: "cannot find this program's path".into(),
        source: e,
    })?;
    let p = exe.with_file_name("pocnet-relay");
    if p.exists() {
        Ok(p)
    } else {
        Err(Error::Usage(format!(
            "pocnet-relay is not next to pocnet ({}); build it (`cargo build --release`) or set POCNET_RELAY_BIN",
            p.display()
        )))
    }
}

fn relay_cmd(data: &Path) -> Result<Command> {
    let mut c = Command::new(relay_bin()?);
    c.env("POCNET_RELAY_PASSPHRASE", RELAY_PASSPHRASE)
        .env("POCNET_RELAY_DATA", data)
        .env(
            "POCNET_LOG",
            std::env::var("POCNET_RELAY_LOG").unwrap_or_else(|_| "warn".into()),
        );
    Ok(c)
}

impl RelayProcess {
    /// Initialises a relay in `data` for directory key `vkey` (unless done already) and
    /// serves it on 127.0.0.1 with a port the OS picks (or the one it had).
    pub fn start(data: &Path, vkey: &str, listen: &str) -> Result<RelayProcess> {
        if !data.join("relay.toml").exists() {
            let out = relay_cmd(data)?
                .args(["init", "--directory", vkey])
                .output()
                .map_err(|e| Error::Io {
                    context: "cannot run pocnet-relay init".into(),
                    source: e,
                })?;
            if !out.status.success() {
                return Err(Error::Usage(format!(
                    "pocnet-relay init failed: {}",
                    crate::render::line(&String::from_utf8_lossy(&out.stderr))
                )));
            }
        }
        // A drill is one machine's many parties: the per-key rate limits stay, the shared
        // budget for keys not listed yet (the registrations) is opened for the enrolment.
        let mut child = relay_cmd(data)?
            .args([
                "serve",
                "--listen",
                listen,
                "--set",
                "unenrolled_rate_per_sec=1000",
                "--set",
                "max_registrations=10000",
                "--set",
                "request_rate_per_sec=1000",
                "--set",
                "request_burst=2000",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::Io {
                context: "cannot start pocnet-relay".into(),
                source: e,
            })?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .map_err(|e| Error::Io {
                context: "cannot read pocnet-relay's output".into(),
                source: e,
            })?;
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() != 5 || parts[0] != "listening" {
            let _ = child.kill();
            return Err(Error::Usage(format!(
                "pocnet-relay did not start: {}",
                crate::render::line(&line)
            )));
        }
        Ok(RelayProcess {
            addr: parts[2].to_string(),
            fingerprint: parts[4].to_string(),
            child: Some(child),
        })
    }

    /// Stops the relay (SIGTERM: it finishes what is in flight).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One simulated (or human) member of the drill network.
#[derive(Clone, Debug)]
pub struct Member {
    /// `CL.primary`.
    pub handle: String,
    /// ISO code.
    pub state: String,
    /// Its rank.
    pub rank: Rank,
    /// Profile directory (none for a human: their own client is elsewhere).
    pub home: Option<PathBuf>,
}

/// What a human participant needs to enrol their own client.
#[derive(Clone, Debug)]
pub struct HumanInvite {
    /// The handle they will hold.
    pub handle: String,
    /// The relay's address.
    pub relay: String,
    /// The relay's fingerprint.
    pub relay_key: String,
    /// The directory key.
    pub vkey: String,
}

/// The enrolled network.
pub struct Network {
    /// The drill directory.
    pub dir: PathBuf,
    /// The relay.
    pub relay: RelayProcess,
    /// The directory key.
    pub vkey: String,
    /// The Secretariat's profile directory.
    pub secretariat: PathBuf,
    /// Every POC.
    pub members: Vec<Member>,
}

/// Opens a simulated party's profile.
pub fn open(home: &Path) -> Result<Client> {
    Client::open(home, DRILL_PASSPHRASE.as_bytes())
}

fn contact(handle: &str, state: &str) -> Contact {
    let lang = match state {
        "AR" | "BO" | "CL" | "CO" | "CR" | "CU" | "DO" | "EC" | "ES" | "GT" | "HN" | "MX" | "NI" | "PA" | "PE"
        | "PY" | "SV" | "UY" | "VE" => "es",
        "BR" | "PT" => "pt",
        "HT" | "FR" => "fr",
        _ => "en",
    };
    Contact {
        name: format!("{handle} (simulated)"),
        position: "Cyber policy point of contact".into(),
        institution: format!("{state} national cybersecurity agency (simulated)"),
        email: format!("{}@drill.invalid", handle.to_ascii_lowercase()),
        phones: vec!["+1 555 0100".into()],
        languages: vec![lang.into()],
        time_zone: "UTC".into(),
        working_hours: "24/7 duty roster".into(),
    }
}

fn rank_name(r: Rank) -> String {
    match r {
        Rank::Primary => "primary".into(),
        Rank::Alternate => "alternate".into(),
        Rank::Further(n) => format!("further{n}"),
    }
}

/// A new profile at `home`, enrolled at the relay (listed or waiting).
async fn new_party(home: &Path, relay: &RelayProcess, vkey: &str) -> Result<(Client, Enrolment)> {
    Profile::create(home, DRILL_PASSPHRASE.as_bytes(), DRILL_KDF)?;
    let mut c = open(home)?;
    let e = c.enrol(&relay.addr, &relay.fingerprint, Some(vkey)).await?;
    Ok((c, e))
}

impl Network {
    /// Builds a network in `dir`: the Secretariat and its directory, a relay, and for each
    /// state its authority and one POC per rank in `ranks` (humans named in `humans` are
    /// left for their own clients). `progress` is told each party as it is listed.
    pub async fn build(
        dir: &Path,
        states: &[String],
        ranks: &[Rank],
        humans: &[String],
        mut progress: impl FnMut(&str, usize, usize),
        mut human: impl FnMut(&HumanInvite) -> Result<(String, String)>,
    ) -> Result<Network> {
        crate::profile::private_dir(dir)?;
        let sec_home = dir.join("secretariat");
        Profile::create(&sec_home, DRILL_PASSPHRASE.as_bytes(), DRILL_KDF)?;
        let mut sec = open(&sec_home)?;
        let vkey = sec.secretariat_genesis("drill.pocnet/directory", &[], 0)?;
        let relay = RelayProcess::start(&dir.join("relay"), &vkey, "127.0.0.1:0")?;
        sec.enrol(&relay.addr, &relay.fingerprint, Some(&vkey)).await?;
        let s = sec.connect().await?;
        let total = states.len() * (1 + ranks.len());
        let mut done = 0;
        let mut members = Vec::new();
        for st in states {
            // The authority: registers, the Secretariat hears its voice code and enrols it.
            let a_home = dir.join(format!("{st}.authority"));
            let (mut a, _) = new_party(&a_home, &relay, &vkey).await?;
            let voice = a.identity.public_key().voice_code().to_string();
            sec.enrol_authority(
                &s,
                st,
                &a.identity.fingerprint().to_hex(),
                &format!("{st} national authority (simulated)"),
                "Ministry of Foreign Affairs",
                |_| Ok(voice.clone()),
            )
            .await?;
            a.enrol(&relay.addr, &relay.fingerprint, None).await?;
            done += 1;
            progress(&format!("{st}.authority"), done, total);
            let sa = a.connect().await?;
            for &rank in ranks {
                let handle = format!("{st}.{}", rank_name(rank));
                if humans.iter().any(|h| h == &handle) {
                    // A person with their own client: they enrol (registering their key), the
                    // authority nominates it, and the Secretariat approves it after hearing
                    // their voice code — the real voice check, asked of the drill officer.
                    let invite = HumanInvite {
                        handle: handle.clone(),
                        relay: relay.addr.clone(),
                        relay_key: relay.fingerprint.clone(),
                        vkey: vkey.clone(),
                    };
                    let mut tries = 0;
                    loop {
                        tries += 1;
                        let (fp, heard) = human(&invite)?;
                        let fp = fp.trim().to_ascii_lowercase();
                        let r = async {
                            a.nominate(&sa, Category::CyberPolicy, rank, contact(&handle, st), &fp)
                                .await?;
                            let pending = sec.pending(&s).await?;
                            let id = pending
                                .iter()
                                .find(|(p, _)| p.nominee.as_ref().is_some_and(|n| n.fingerprint == fp))
                                .map(|(p, _)| p.id)
                                .ok_or_else(|| {
                                    Error::Usage(format!("no registration of {fp} at the relay: enrol first"))
                                })?;
                            let heard = heard.clone();
                            sec.approve(&s, id, move |_| Ok(heard)).await
                        }
                        .await;
                        match r {
                            Ok(_) => {
                                eprintln!(
                                    "{handle} approved: they run the same `pocnet enrol` again, then `pocnet watch`"
                                );
                                break;
                            }
                            Err(e) if tries < 3 => {
                                tracing::warn!("{handle}: {}", crate::render::line(&e.to_string()));
                                eprintln!(
                                    "{handle} not approved: {}; try again",
                                    crate::render::line(&e.to_string())
                                );
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    members.push(Member {
                        handle: handle.clone(),
                        state: st.clone(),
                        rank,
                        home: None,
                    });
                    done += 1;
                    progress(&handle, done, total);
                    continue;
                }
                let home = dir.join(&handle);
                let (mut p, _) = new_party(&home, &relay, &vkey).await?;
                let fp = p.identity.fingerprint().to_hex();
                a.nominate(&sa, Category::CyberPolicy, rank, contact(&handle, st), &fp)
                    .await?;
                let pending = sec.pending(&s).await?;
                let id = pending
                    .iter()
                    .find(|(p, _)| p.nominee.as_ref().is_some_and(|n| n.fingerprint == fp))
                    .map(|(p, _)| p.id)
                    .ok_or_else(|| Error::Protocol(format!("the nomination of {handle} did not arrive")))?;
                let voice = p.identity.public_key().voice_code().to_string();
                sec.approve(&s, id, |_| Ok(voice.clone())).await?;
                p.enrol(&relay.addr, &relay.fingerprint, None).await?;
                members.push(Member {
                    handle: handle.clone(),
                    state: st.clone(),
                    rank,
                    home: Some(home),
                });
                done += 1;
                progress(&handle, done, total);
            }
            sa.close().await;
        }
        s.close().await;
        Ok(Network {
            dir: dir.to_path_buf(),
            relay,
            vkey,
            secretariat: sec_home,
            members,
        })
    }
}
