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
