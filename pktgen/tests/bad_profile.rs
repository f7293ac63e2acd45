//! Bad profiles and flags are refused before DPDK starts, with exit code 2 and a message
//! naming the field.

use std::process::Command;

fn run(profile: &str, extra: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("p.toml");
    std::fs::write(&path, profile).expect("write profile");
    let out = Command::new(env!("CARGO_BIN_EXE_aegis-pktgen"))
        .arg("run")
        .arg("--profile")
        .arg(&path)
        .args(extra)
        .output()
        .expect("run aegis-pktgen");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_profiles_get_a_clear_error() {
    let tx = "[port]\ntx = \"net_null0\"\n";
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            &format!("{tx}[traffic]\nszie = 64\n"),
            &[],
            &["unknown field `szie`", "expected one of", "line 4"],
        ),
        (
            &format!("{tx}[traffic]\nsize = 20\n"),
            &[],
            &["traffic.size", "at least 64"],
        ),
        (
            &format!("{tx}[run]\nrate = \"warp 9\"\n"),
            &[],
            &["rate", "invalid rate"],
        ),
        (
            &format!("{tx}[traffic]\nflows = 100\n"),
            &[],
            &["traffic.flows", "only 1 distinct"],
        ),
        (
            &format!("{tx}[traffic]\nsrc_port = \"9-1\"\n"),
            &[],
            &["src_port", "below the first"],
        ),
        ("[traffic]\nsize = 64\n", &[], &["port.tx", "required"]),
        ("this is not toml", &[], &["p.toml"]),
        // A flag overrides the profile and is checked the same way.
        (tx, &["--size", "9000"], &["traffic.size", "at most 1518"]),
    ];
    for (profile, extra, wants) in cases {
        let (code, err) = run(profile, extra);
        assert_eq!(code, 2, "{profile:?} {extra:?}: exit {code}, stderr {err}");
        for w in *wants {
            assert!(err.contains(w), "{profile:?}: {err:?} lacks {w:?}");
        }
        assert!(!err.contains("EAL:"), "refused before DPDK starts: {err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_aegis-pktgen"))
        .args(["run", "--profile", "/nonexistent/p.toml"])
        .output()
        .expect("run aegis-pktgen");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("cannot read profile /nonexistent/p.toml"),
        "{err}"
    );
}
