//! End-to-end tests of the admin server: a [`MemoryBackend`] served on a temporary unix
//! socket, called through the generated client.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aegis_api::dataplane::v1 as pb;
use pb::add_route_request::Target;
use pb::dataplane_admin_client::DataplaneAdminClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::Code;

use super::*;

struct Running {
    _dir: tempfile::TempDir,
    path: PathBuf,
    backend: Arc<MemoryBackend>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), CtlError>>,
}

impl Running {
    async fn client(&self) -> DataplaneAdminClient<Channel> {
        let channel = aegis_api::unix::connect(&self.path, Duration::from_secs(10))
            .await
            .expect("connect to the test server");
        DataplaneAdminClient::new(channel)
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
        assert!(!self.path.exists(), "socket removed on shutdown");
    }
}

fn backend() -> Arc<MemoryBackend> {
    let workers = [
        WorkerInfo { id: 0, lcore: 1 },
        WorkerInfo { id: 1, lcore: 2 },
    ];
    let b = MemoryBackend::new(PollMode::Adaptive, &workers);
    b.add_port(
        "eth0",
        "net_af_packet0,iface=veth-a",
        [2, 0, 0, 0, 0, 1],
        1500,
        10_000,
    )
    .unwrap();
    b.add_port(
        "eth1",
        "net_af_packet1,iface=veth-b",
        [2, 0, 0, 0, 0, 2],
        9000,
        10_000,
    )
    .unwrap();
    b.add_address("eth0".into(), "10.0.1.1/24".parse().unwrap())
        .unwrap();
    b.add_address("eth1".into(), "10.0.2.1/24".parse().unwrap())
        .unwrap();
    Arc::new(b)
}

async fn start(backend: Arc<MemoryBackend>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    // A parent directory that does not exist yet: the server creates it.
    let path = dir.path().join("run/aegis/dataplane.sock");
    let server = AdminServer::bind(&path, backend.clone()).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    Running {
        _dir: dir,
        path,
        backend,
        stop,
        task,
    }
}

fn via(prefix: &str, gw: &str) -> pb::AddRouteRequest {
    pb::AddRouteRequest {
        prefix: prefix.into(),
        target: Some(Target::Via(gw.into())),
    }
}

#[tokio::test]
async fn status_interfaces_and_counters() {
    let srv = start(backend()).await;
    let b = &srv.backend;
    b.count_port(
        "eth1",
        PortCounters {
            tx_packets: 5,
            tx_bytes: 320,
            rx_nombuf: 1,
            ..PortCounters::default()
        },
    )
    .unwrap();
    b.set_link("eth1", false, 0).unwrap();
    let mut c = srv.client().await;

    let st = c
        .get_status(pb::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.revision, 3);
    assert_eq!(st.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(st.poll_mode, pb::PollMode::Adaptive as i32);
    let lcores: Vec<_> = st.workers.iter().map(|w| (w.id, w.lcore)).collect();
    assert_eq!(lcores, [(0, 1), (1, 2)]);

    let ifs = c
        .show_interfaces(pb::ShowInterfacesRequest {})
        .await
        .unwrap()
        .into_inner()
        .interfaces;
    assert_eq!(ifs.len(), 2);
    assert_eq!(ifs[0].name, "eth0");
    assert_eq!(ifs[0].mac, "02:00:00:00:00:01");
    assert_eq!(ifs[0].addresses, ["10.0.1.1/24"]);
    assert!(ifs[0].link_up && ifs[0].admin_up);
    assert_eq!(ifs[1].devargs, "net_af_packet1,iface=veth-b");
    assert_eq!(
        (ifs[1].mtu, ifs[1].link_up, ifs[1].link_speed_mbps),
        (9000, false, 0)
    );
    let ctr = ifs[1].counters.unwrap();
    assert_eq!((ctr.tx_packets, ctr.tx_bytes, ctr.rx_nombuf), (5, 320, 1));

    b.count_node(0, "eth-input", 4, 100, 5000).unwrap();
    b.count_node(1, "eth-input", 1, 28, 1400).unwrap();
    b.count_polls(0, 50, 46, 3).unwrap();
    let rt = c
        .show_runtime(pb::ShowRuntimeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rt.workers[0].polls, 50);
    assert_eq!(rt.workers[0].nodes[0].vectors_per_call, 25.0);
    assert_eq!(rt.total[0].vectors, 128);
    assert_eq!(rt.total[0].clocks_per_packet, 50.0);

    b.count_drop(0, "no_route", "No route to the destination.", 3)
        .unwrap();
    b.count_drop(1, "no_route", "No route to the destination.", 2)
        .unwrap();
    let errs = c
        .show_errors(pb::ShowErrorsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(errs.workers.len(), 2);
    assert_eq!(errs.total[0].reason, "no_route");
    assert_eq!(errs.total[0].count, 5);

    let rev = c
        .clear_counters(pb::ClearCountersRequest {})
        .await
        .unwrap()
        .into_inner()
        .revision;
    assert_eq!(rev, 3, "clearing counters does not change the revision");
    let errs = c
        .show_errors(pb::ShowErrorsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(errs.total[0].count, 0);
    srv.stop().await;
}

#[tokio::test]
async fn route_mutations() {
    let srv = start(backend()).await;
    let mut c = srv.client().await;

    let r = c.add_route(via("10.9.0.0/16", "10.0.1.2")).await.unwrap();
    assert_eq!(r.into_inner().revision, 4);
    let discard = pb::AddRouteRequest {
        prefix: "192.0.2.0/24".into(),
        target: Some(Target::Discard(pb::RouteKind::Blackhole as i32)),
    };
    assert_eq!(c.add_route(discard).await.unwrap().into_inner().revision, 5);
    let dev = pb::AddRouteRequest {
        prefix: "198.51.100.0/24".into(),
        target: Some(Target::Port("eth1".into())),
    };
    assert_eq!(c.add_route(dev).await.unwrap().into_inner().revision, 6);

    let routes = c
        .show_routes(pb::ShowRoutesRequest {})
        .await
        .unwrap()
        .into_inner()
        .routes;
    let find = |p: &str| routes.iter().find(|r| r.prefix == p).unwrap().clone();
    let gw = find("10.9.0.0/16");
    assert_eq!(gw.kind, pb::RouteKind::Gateway as i32);
    assert_eq!(
        (gw.next_hop.as_str(), gw.port.as_str()),
        ("10.0.1.2", "eth0")
    );
    assert_eq!(gw.origin, pb::RouteOrigin::Static as i32);
    let bh = find("192.0.2.0/24");
    assert_eq!(bh.kind, pb::RouteKind::Blackhole as i32);
    assert_eq!((bh.next_hop.as_str(), bh.port.as_str()), ("", ""));
    let dev = find("198.51.100.0/24");
    assert_eq!(dev.kind, pb::RouteKind::Connected as i32);
    assert_eq!(dev.origin, pb::RouteOrigin::Static as i32);
    let local = find("10.0.2.1/32");
    assert_eq!(local.kind, pb::RouteKind::Local as i32);
    assert_eq!(local.origin, pb::RouteOrigin::Connected as i32);
    assert_eq!(routes.len(), 7);

    let del = pb::DeleteRouteRequest {
        prefix: "10.9.0.0/16".into(),
    };
    assert_eq!(
        c.delete_route(del.clone())
            .await
            .unwrap()
            .into_inner()
            .revision,
        7
    );
    let err = c.delete_route(del).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().starts_with("prefix: "), "{}", err.message());
    srv.stop().await;
}

#[tokio::test]
async fn addresses_ports_and_neighbours() {
    let srv = start(backend()).await;
    let mut c = srv.client().await;
    let add = |port: &str, address: &str| pb::AddressRequest {
        port: port.into(),
        address: address.into(),
    };
    assert_eq!(
        c.add_address(add("eth1", "10.0.3.1/24"))
            .await
            .unwrap()
            .into_inner()
            .revision,
        4
    );
    let err = c.add_address(add("eth1", "10.0.3.1/24")).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let err = c.add_address(add("eth9", "10.0.9.1/24")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().starts_with("port: "), "{}", err.message());
    assert_eq!(
        c.delete_address(add("eth1", "10.0.3.1/24"))
            .await
            .unwrap()
            .into_inner()
            .revision,
        5
    );
    let err = c
        .delete_address(add("eth1", "10.0.3.1/24"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().starts_with("address: "), "{}", err.message());

    let down = pb::SetPortStateRequest {
        port: "eth0".into(),
        up: false,
    };
    assert_eq!(
        c.set_port_state(down).await.unwrap().into_inner().revision,
        6
    );
    let ifs = c
        .show_interfaces(pb::ShowInterfacesRequest {})
        .await
        .unwrap()
        .into_inner()
        .interfaces;
    assert!(!ifs[0].admin_up);

    srv.backend
        .set_neighbour(NeighbourInfo {
            port: "eth0".into(),
            ip: "10.0.1.2".parse().unwrap(),
            mac: Some([2, 0, 0, 0, 0, 0x22]),
            state: NeighbourState::Reachable,
            age: Duration::from_millis(1500),
        })
        .unwrap();
    srv.backend
        .set_neighbour(NeighbourInfo {
            port: "eth1".into(),
            ip: "10.0.2.9".parse().unwrap(),
            mac: None,
            state: NeighbourState::Incomplete,
            age: Duration::ZERO,
        })
        .unwrap();
    let n = c
        .show_neighbours(pb::ShowNeighboursRequest {})
        .await
        .unwrap()
        .into_inner()
        .neighbours;
    assert_eq!(n.len(), 2);
    assert_eq!(
        (n[0].ip.as_str(), n[0].mac.as_str()),
        ("10.0.1.2", "02:00:00:00:00:22")
    );
    assert_eq!(n[0].state, pb::NeighbourState::Reachable as i32);
    assert_eq!(n[0].age_seconds, 1.5);
    assert_eq!(
        (n[1].mac.as_str(), n[1].state),
        ("", pb::NeighbourState::Incomplete as i32)
    );
    srv.stop().await;
}

#[tokio::test]
async fn malformed_input_is_invalid_argument_naming_the_field() {
    let srv = start(backend()).await;
    let mut c = srv.client().await;
    let cases: Vec<(pb::AddRouteRequest, &str)> = vec![
        (via("10.9.0.1/16", "10.0.1.2"), "prefix: "),
        (via("banana", "10.0.1.2"), "prefix: "),
        (via("10.9.0.0/16", "10.0.1"), "via: "),
        (via("10.9.0.0/16", "10.0.7.7"), "via: "),
        (
            pb::AddRouteRequest {
                prefix: "10.9.0.0/16".into(),
                target: None,
            },
            "target: ",
        ),
        (
            pb::AddRouteRequest {
                prefix: "10.9.0.0/16".into(),
                target: Some(Target::Discard(pb::RouteKind::Local as i32)),
            },
            "discard: ",
        ),
    ];
    for (req, field) in cases {
        let err = c.add_route(req.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{req:?}: {err:?}");
        assert!(
            err.message().starts_with(field),
            "{req:?}: {}",
            err.message()
        );
    }
    let err = c
        .add_address(pb::AddressRequest {
            port: "eth0".into(),
            address: "10.0.5.0/24".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("address: "), "{}", err.message());
    let err = c
        .set_port_state(pb::SetPortStateRequest {
            port: String::new(),
            up: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("port: "), "{}", err.message());
    let err = c
        .set_port_state(pb::SetPortStateRequest {
            port: "nope".into(),
            up: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // None of that changed anything.
    let st = c
        .get_status(pb::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.revision, 3);
    srv.stop().await;
}

#[tokio::test]
async fn socket_lifecycle() {
    let srv = start(backend()).await;
    let mode = std::fs::metadata(&srv.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
    // A second server must not steal a live socket.
    let err = AdminServer::bind(&srv.path, backend()).err().unwrap();
    assert!(matches!(err, CtlError::InUse(_)), "{err}");
    let path = srv.path.clone();
    let dir = path.parent().unwrap().to_path_buf();

    // A stale socket (bound, never served, listener closed) is replaced.
    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let again = AdminServer::bind(&stale, backend()).unwrap();
    assert_eq!(again.path(), stale);
    drop(again);

    // A regular file is never removed.
    let file = dir.join("not-a-socket");
    std::fs::write(&file, b"keep me").unwrap();
    let err = AdminServer::bind(&file, backend()).err().unwrap();
    assert!(matches!(err, CtlError::NotASocket(_)), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");

    srv.stop().await;
    assert!(aegis_api::unix::connect(&path, Duration::from_secs(1))
        .await
        .is_err());
}

#[tokio::test]
async fn reflection_lists_the_admin_service() {
    use tokio_stream::StreamExt;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let srv = start(backend()).await;
    let channel = aegis_api::unix::connect(&srv.path, Duration::from_secs(10))
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply {reply:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"aegis.dataplane.v1.DataplaneAdmin"),
        "{names:?}"
    );
    drop(replies);
    srv.stop().await;
}
