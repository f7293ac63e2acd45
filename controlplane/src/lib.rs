//! Aegis control plane: the `aegisctl` admin CLI and its clients.
#![deny(unsafe_code)]
