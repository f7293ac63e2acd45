//! Aegis gRPC API: the generated message types, clients and servers for every `.proto` under
//! `proto/`, the encoded descriptor set for server reflection, and [`unix::connect`] for
//! clients of a unix-socket server, and [`auth::TokenCheck`], the bearer-token check of the
//! servers.
#![deny(unsafe_code)]

pub mod auth;
pub mod unix;

/// The dataplane admin API (`aegis.dataplane.v1`), served by `aegis-dataplane` on its unix
/// socket and used by `aegisctl dp`.
pub mod dataplane {
    /// Version 1 of the dataplane admin API.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("aegis.dataplane.v1");
    }
}

/// The control-plane API (`aegis.controlplane.v1`), served by `aegis-controlplane` and used by
/// `aegisctl` and the agents.
pub mod controlplane {
    /// Version 1 of the control-plane API.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("aegis.controlplane.v1");
    }
}

/// Encoded `FileDescriptorSet` of every API file, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("aegis_descriptor");
