//! `aegisctl`: the Aegis admin CLI.
fn main() {}
