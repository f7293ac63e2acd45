//! `aegisctl` control-plane commands.
