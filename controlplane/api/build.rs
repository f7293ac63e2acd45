//! Compiles the .proto files under `proto/` with protox (no protoc needed) into tonic/prost
//! code, and writes the encoded descriptor set used for gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

/// Dataplane messages that control-plane messages embed (`HostCaptureRequest`, `TraceRequest`,
/// `HostHops`, `GatewayMemberStatus`, `HostTraceWatchRequest`): they need the control-plane package's serde derives too.
const EMBEDDED_DATAPLANE: &[&str] = &[
    ".aegis.dataplane.v1.CaptureRequest",
    ".aegis.dataplane.v1.BpfInstruction",
    ".aegis.dataplane.v1.InjectProbeRequest",
    ".aegis.dataplane.v1.TraceHop",
    ".aegis.dataplane.v1.VrrpInstance",
    ".aegis.dataplane.v1.NamedCount",
    ".aegis.dataplane.v1.ShowSyncReply",
    ".aegis.dataplane.v1.SyncPeer",
    ".aegis.dataplane.v1.TraceWatchRequest",
    // Printed by `aegisctl trace watch -o json`.
    ".aegis.dataplane.v1.WatchedPath",
    ".aegis.dataplane.v1.TraceWatchStats",
    ".aegis.dataplane.v1.TraceWatchStarted",
];

const PROTOS: &[&str] = &[
    "aegis/dataplane/v1/admin.proto",
    "aegis/controlplane/v1/controlplane.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["proto"])?;
    std::fs::write(out_dir.join("aegis_descriptor.bin"), fds.encode_to_vec())?;
    let mut builder = tonic_prost_build::configure();
    for message in EMBEDDED_DATAPLANE {
        builder = builder
            .type_attribute(message, "#[derive(serde::Serialize, serde::Deserialize)]")
            .message_attribute(message, "#[serde(default)]");
    }
    builder
        .build_server(true)
        .build_client(true)
        // The control plane stores its objects (Raft log, snapshots) as JSON.
        .type_attribute(
            ".aegis.controlplane.v1",
            "#[derive(serde::Serialize, serde::Deserialize)]",
        )
        .message_attribute(".aegis.controlplane.v1", "#[serde(default)]")
        .compile_fds(fds)?;
    for proto in PROTOS {
        println!("cargo:rerun-if-changed=proto/{proto}");
    }
    Ok(())
}
