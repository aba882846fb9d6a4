//! The `pocnet` binary's local behaviour: profiles, passphrases, clear errors.

use std::process::Command;

fn pocnet(home: &std::path::Path, pass: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pocnet"));
    c.env("POCNET_HOME", home)
        .env("POCNET_PASSPHRASE", pass)
        .env_remove("POCNET_PASSPHRASE_FILE");
    c
}

#[test]
fn init_then_wrong_passphrase_is_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = pocnet(dir.path(), "a good passphrase")
        .args(["init", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fp = v["fingerprint"].as_str().unwrap().to_string();
    let key_before = std::fs::read(dir.path().join("identity.key")).unwrap();
    let out = pocnet(dir.path(), "not the passphrase")
        .args(["whoami"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    assert_eq!(std::fs::read(dir.path().join("identity.key")).unwrap(), key_before);
    let out = pocnet(dir.path(), "a good passphrase")
        .args(["whoami", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["fingerprint"], fp.as_str());
    // The key file is private and is not the plain secret.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dir.path().join("identity.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn passphrase_from_a_file_works_and_init_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let pf = dir.path().join("pass.txt");
    std::fs::write(&pf, "from a file passphrase\n").unwrap();
    let home = dir.path().join("p");
    let mut c = Command::new(env!("CARGO_BIN_EXE_pocnet"));
    c.env("POCNET_HOME", &home)
        .env_remove("POCNET_PASSPHRASE")
        .env("POCNET_PASSPHRASE_FILE", &pf);
    assert!(c.arg("init").output().unwrap().status.success());
    let out = pocnet(&home, "from a file passphrase").arg("init").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds an identity"));
}

#[test]
fn commands_without_a_profile_or_enrolment_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = pocnet(&dir.path().join("none"), "whatever pass")
        .arg("inbox")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `pocnet init`"));
    assert!(pocnet(dir.path(), "a good passphrase")
        .arg("init")
        .output()
        .unwrap()
        .status
        .success());
    let out = pocnet(dir.path(), "a good passphrase").arg("inbox").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not enrolled yet"));
    let out = pocnet(dir.path(), "a good passphrase")
        .args(["send", "CL.primary", "--tlp", "purple", "-m", "x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tlp"));
}

#[test]
fn each_kind_of_failure_has_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let code = |pass: &str, args: &[&str]| {
        let out = pocnet(dir.path(), pass).args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert_eq!(code("a good passphrase", &["whoami"]).0, Some(4), "no profile yet");
    assert_eq!(code("a good passphrase", &["init"]).0, Some(0));
    assert_eq!(code("not the passphrase", &["whoami"]).0, Some(3));
    assert_eq!(code("a good passphrase", &["inbox"]).0, Some(4), "not enrolled here");
    let (c, err) = code("a good passphrase", &["read", "not-hex"]);
    assert_eq!(c, Some(2), "{err}");
    let (c, err) = code("a good passphrase", &["read", "abcdef"]);
    assert_eq!(c, Some(10), "{err}");
    assert!(err.contains("no message with id abcdef"), "{err}");
    let (c, err) = code(
        "a good passphrase",
        &["send", "CL.primary", "--tlp", "purple", "-m", "x"],
    );
    assert_eq!(c, Some(2), "{err}");
}

#[test]
fn an_existing_profile_left_readable_by_others_is_made_private_on_open() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("p");
    assert!(pocnet(&home, "a good passphrase")
        .arg("init")
        .output()
        .unwrap()
        .status
        .success());
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(home.join("identity.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(pocnet(&home, "a good passphrase")
        .arg("whoami")
        .output()
        .unwrap()
        .status
        .success());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home), 0o700);
    for e in std::fs::read_dir(&home).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
}
