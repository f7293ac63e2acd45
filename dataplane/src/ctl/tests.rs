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

/// Connection `n` of the test table: TCP 10.1.1.11:4000n → 10.1.2.13:80 on vm1 (b1) for
/// even `n`, UDP from 10.1.2.13 → 10.1.1.11:53 on vm2 (b3) for odd `n`.
fn conn(n: u16) -> ConnectionInfo {
    let tcp = n.is_multiple_of(2);
    let (port, endpoint, protocol, state) = if tcp {
        ("vm1", "b1", 6, ConnState::TcpEstablished)
    } else {
        ("vm2", "b3", 17, ConnState::UdpReplied)
    };
    let (src, dst): (std::net::Ipv4Addr, std::net::Ipv4Addr) = if tcp {
        ("10.1.1.11".parse().unwrap(), "10.1.2.13".parse().unwrap())
    } else {
        ("10.1.2.13".parse().unwrap(), "10.1.1.11".parse().unwrap())
    };
    ConnectionInfo {
        port: port.into(),
        endpoint: Some(endpoint.into()),
        protocol,
        src,
        src_port: 40000 + n,
        dst,
        dst_port: if tcp { 80 } else { 53 },
        state,
        expires: Duration::from_millis(7_199_500),
        packets: [3, 2],
        bytes: [180, 120],
    }
}

/// The test backend with VM ports vm1 (b1) and vm2 (b3) and connections on both workers.
fn overlay_backend() -> Arc<MemoryBackend> {
    let b = backend();
    for (port, mac, endpoint) in [("vm1", 0x11, "b1"), ("vm2", 0x12, "b3")] {
        b.add_port(port, "net_tap", [2, 0, 0, 0, 0, mac], 1450, 10_000)
            .unwrap();
        b.bind_endpoint(port, Some(endpoint)).unwrap();
    }
    b.set_connections(0, 1024, (0..5).map(conn).collect())
        .unwrap();
    b.set_connections(1, 1024, (5..8).map(conn).collect())
        .unwrap();
    b
}

#[tokio::test]
async fn connections_filter_limit_and_count_per_worker() {
    let srv = start(overlay_backend()).await;
    let mut c = srv.client().await;
    let ask = |req: pb::ShowConnectionsRequest| {
        let mut c = c.clone();
        async move { c.show_connections(req).await }
    };
    let all = ask(pb::ShowConnectionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let counts: Vec<_> = all
        .workers
        .iter()
        .map(|w| (w.worker, w.entries, w.matched, w.connections.len()))
        .collect();
    assert_eq!(counts, [(0, 5, 5, 5), (1, 3, 3, 3)]);
    let first = &all.workers[0].connections[0];
    assert_eq!(
        (
            first.port.as_str(),
            first.endpoint.as_str(),
            first.protocol,
            first.src_ip.as_str(),
            first.src_port,
            first.dst_ip.as_str(),
            first.dst_port,
            first.state.as_str()
        ),
        (
            "vm1",
            "b1",
            6,
            "10.1.1.11",
            40000,
            "10.1.2.13",
            80,
            "tcp_established"
        )
    );
    assert_eq!(first.expires_seconds, 7199.5);
    assert_eq!(
        (
            first.packets_orig,
            first.packets_reply,
            first.bytes_orig,
            first.bytes_reply
        ),
        (3, 2, 180, 120)
    );
    assert_eq!(all.workers[0].capacity, 1024);

    // By control-plane port name, protocol and state; a limit over all workers.
    let udp = ask(pb::ShowConnectionsRequest {
        port: "b3".into(),
        protocol: "udp".into(),
        state: "udp_replied".into(),
        limit: 3,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    let counts: Vec<_> = udp
        .workers
        .iter()
        .map(|w| (w.matched, w.connections.len()))
        .collect();
    assert_eq!(counts, [(2, 2), (2, 1)], "matched counts survive the limit");
    assert!(udp
        .workers
        .iter()
        .flat_map(|w| &w.connections)
        .all(|c| c.port == "vm2" && c.protocol == 17));
    let by_ip = ask(pb::ShowConnectionsRequest {
        port: "vm1".into(),
        ip: "10.1.2.13".into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(by_ip.workers[0].matched + by_ip.workers[1].matched, 4);

    let err = ask(pb::ShowConnectionsRequest {
        port: "b9".into(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().starts_with("port: "), "{}", err.message());
    for (req, field) in [
        (
            pb::ShowConnectionsRequest {
                protocol: "gre".into(),
                ..Default::default()
            },
            "protocol: ",
        ),
        (
            pb::ShowConnectionsRequest {
                state: "open".into(),
                ..Default::default()
            },
            "state: ",
        ),
        (
            pb::ShowConnectionsRequest {
                limit: 1_000_000,
                ..Default::default()
            },
            "limit: ",
        ),
    ] {
        let err = ask(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().starts_with(field), "{}", err.message());
    }

    // A worker that does not answer is reported, the others still are.
    srv.backend
        .fail_dumps(1, Some("no answer within 2s"))
        .unwrap();
    let r = c
        .show_connections(pb::ShowConnectionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.workers[0].matched, 5);
    assert_eq!(r.workers[1].error, "no answer within 2s");
    assert!(r.workers[0].error.is_empty());

    let rt = c
        .show_runtime(pb::ShowRuntimeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (rt.workers[1].connections, rt.workers[1].connection_capacity),
        (3, 1024)
    );
    let ifs = c
        .show_interfaces(pb::ShowInterfacesRequest {})
        .await
        .unwrap()
        .into_inner()
        .interfaces;
    let endpoints: Vec<_> = ifs.iter().map(|i| i.endpoint.as_str()).collect();
    assert_eq!(endpoints, ["", "", "b1", "b3"]);
    srv.stop().await;
}

/// The overlay of host a in the overlay testkit, as a backend reports it.
fn overlay_info() -> OverlayInfo {
    let ip = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap();
    let cidr = |s: &str| s.parse::<Ipv4Cidr>().unwrap();
    let port = |name: &str, subnet: &str, mac: u8, addr: &str, location| VpcPortInfo {
        name: name.into(),
        subnet: subnet.into(),
        mac: [2, 0, 0, 0, 1, mac],
        ips: vec![ip(addr)],
        location,
    };
    OverlayInfo {
        revision: 42,
        underlay_ip: Some(ip("10.88.0.11")),
        mtu: 1450,
        vpcs: vec![
            VpcInfo {
                name: "blue".into(),
                vni: 100,
                subnets: vec![VpcSubnetInfo {
                    name: "blue-a".into(),
                    cidr: cidr("10.1.1.0/24"),
                    gateway: ip("10.1.1.1"),
                }],
                routes: vec![
                    VpcRouteInfo {
                        prefix: cidr("0.0.0.0/0"),
                        target: VpcRouteTarget::Port("b2".into()),
                    },
                    VpcRouteInfo {
                        prefix: cidr("192.0.2.0/24"),
                        target: VpcRouteTarget::Blackhole,
                    },
                    VpcRouteInfo {
                        prefix: cidr("198.51.100.0/24"),
                        target: VpcRouteTarget::NextHopUnknown,
                    },
                ],
                ports: vec![
                    port(
                        "b1",
                        "blue-a",
                        1,
                        "10.1.1.11",
                        PortLocation::Local("vm1".into()),
                    ),
                    port(
                        "b2",
                        "blue-a",
                        2,
                        "10.1.1.12",
                        PortLocation::Remote(ip("10.88.0.12")),
                    ),
                    port("b4", "blue-a", 4, "10.1.1.14", PortLocation::Unplaced),
                ],
            },
            VpcInfo {
                name: "red".into(),
                vni: 200,
                subnets: Vec::new(),
                routes: vec![VpcRouteInfo {
                    prefix: cidr("10.9.0.0/16"),
                    target: VpcRouteTarget::Unreachable,
                }],
                ports: Vec::new(),
            },
        ],
    }
}

#[tokio::test]
async fn vpcs_and_security_denials() {
    let srv = start(backend()).await;
    let mut c = srv.client().await;
    let empty = c
        .show_vpcs(pb::ShowVpcsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (empty.revision, empty.underlay_ip.as_str(), empty.vpcs.len()),
        (0, "", 0)
    );
    srv.backend.set_overlay(overlay_info()).unwrap();
    let all = c
        .show_vpcs(pb::ShowVpcsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (all.revision, all.underlay_ip.as_str(), all.mtu),
        (42, "10.88.0.11", 1450)
    );
    assert_eq!(all.vpcs.len(), 2);
    let blue = &all.vpcs[0];
    assert_eq!(
        (
            blue.subnets[0].cidr.as_str(),
            blue.subnets[0].gateway.as_str()
        ),
        ("10.1.1.0/24", "10.1.1.1")
    );
    let routes: Vec<_> = blue
        .routes
        .iter()
        .map(|r| (r.prefix.as_str(), r.kind, r.port.as_str()))
        .collect();
    assert_eq!(
        routes,
        [
            ("0.0.0.0/0", pb::VpcRouteKind::Port as i32, "b2"),
            ("192.0.2.0/24", pb::VpcRouteKind::Blackhole as i32, ""),
            (
                "198.51.100.0/24",
                pb::VpcRouteKind::NextHopUnknown as i32,
                ""
            ),
        ]
    );
    let ports: Vec<_> = blue
        .ports
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.location,
                p.device.as_str(),
                p.host_ip.as_str(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("b1", pb::PortLocation::Local as i32, "vm1", ""),
            ("b2", pb::PortLocation::Remote as i32, "", "10.88.0.12"),
            ("b4", pb::PortLocation::Unplaced as i32, "", ""),
        ]
    );
    assert_eq!(blue.ports[0].mac, "02:00:00:00:01:01");
    assert_eq!(blue.ports[0].ips, ["10.1.1.11"]);
    let red = c
        .show_vpcs(pb::ShowVpcsRequest { vpc: "red".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(red.vpcs.len(), 1);
    assert_eq!(red.vpcs[0].vni, 200);
    let err = c
        .show_vpcs(pb::ShowVpcsRequest {
            vpc: "green".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().starts_with("vpc: "), "{}", err.message());

    srv.backend.count_denial("default/ingress-deny", 4).unwrap();
    srv.backend.count_denial("web/no-telnet", 0).unwrap();
    let d = c
        .show_security_denials(pb::ShowSecurityDenialsRequest {})
        .await
        .unwrap()
        .into_inner()
        .denials;
    let d: Vec<_> = d.iter().map(|d| (d.rule.as_str(), d.count)).collect();
    assert_eq!(d, [("default/ingress-deny", 4), ("web/no-telnet", 0)]);
    c.clear_counters(pb::ClearCountersRequest {}).await.unwrap();
    let d = c
        .show_security_denials(pb::ShowSecurityDenialsRequest {})
        .await
        .unwrap()
        .into_inner()
        .denials;
    assert!(d.iter().all(|d| d.count == 0));
    srv.stop().await;
}
