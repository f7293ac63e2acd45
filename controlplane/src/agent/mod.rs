//! Agent side of the control plane: what runs on each managed host.

pub mod sysinfo;
