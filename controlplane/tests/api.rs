//! The control plane's gRPC API on a real single-node server in this process: each error
//! class and that a rejected request changes nothing, watch streams (full state, resume,
//! host filter, compaction), heartbeats and host liveness, the bearer token, TLS, the
//! diagnostics of the hosts' dataplanes (an in-memory dataplane backend), and the leader's
//! choice of gateway-group standbys from the heartbeats.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use aegis_api::controlplane::v1::{
    object::Spec, DeleteRequest, EventType, HeartbeatRequest, Host, HostAddress, HostRole, Kind,
    ListHostsRequest, ListRequest, Object, Route, RouteAction, Subnet, Vpc, WatchRequest,
    WatchResponse, WriteRequest,
};
use aegis_controlplane::client::{clients, ClientConfig, Clients};
use aegis_controlplane::server::{run, NodeConfig};
use tokio::sync::watch;
use tonic::Code;

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn config(dir: &Path) -> NodeConfig {
    let listen = free_port();
    NodeConfig {
        id: 1,
        listen,
        advertise: listen.to_string(),
        data_dir: dir.to_path_buf(),
        join: vec![],
        cluster_ip: None,
        heartbeat: Duration::from_millis(50),
        election_min: Duration::from_millis(300),
        election_max: Duration::from_millis(600),
        host_down_after: Duration::from_millis(400),
        history: 10_000,
        snapshot_every: 5000,
        token: None,
        tls: None,
        peer_client: ClientConfig::default(),
        metrics_listen: None,
        write_timeout: Duration::from_secs(5),
    }
}

/// A running node; stopped on drop.
struct Server {
    stop: watch::Sender<bool>,
    addr: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    async fn start(config: NodeConfig) -> Server {
        let addr = config.advertise.clone();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            run(config, rx).await.expect("node failed");
        });
        Server {
            stop,
            addr,
            task: Some(task),
        }
    }

    async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Clients once the node answers writes (it is leader with a lease).
async fn ready(addr: &str, config: &ClientConfig) -> Clients {
    let c = clients(addr, config).unwrap();
    for _ in 0..200 {
        let mut cc = c.clone();
        match cc.state.list(ListRequest::default()).await {
            Ok(_) => {
                // Reads work; a write needs the lease too.
                let mut probe = c.clone();
                let r = probe
                    .state
                    .create(WriteRequest {
                        object: Some(vpc("probe", 16_000_000)),
                        expected_revision: 0,
                    })
                    .await;
                match r {
                    Ok(_) => {
                        probe
                            .state
                            .delete(DeleteRequest {
                                kind: Kind::Vpc as i32,
                                name: "probe".into(),
                                expected_revision: 0,
                            })
                            .await
                            .unwrap();
                        return c;
                    }
                    Err(s) if s.code() == Code::Unavailable => {}
                    Err(s) => panic!("probe write: {s}"),
                }
            }
            Err(s) if s.code() == Code::Unavailable => {}
            Err(s) => return_err(s),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the node never became writable");
}

fn return_err(s: tonic::Status) {
    // Unauthenticated and others are answers too: the server is up.
    assert_ne!(s.code(), Code::Unknown, "{s}");
}

fn obj(name: &str, spec: Spec) -> Object {
    Object {
        name: name.into(),
        spec: Some(spec),
        ..Object::default()
    }
}

fn vpc(name: &str, vni: u32) -> Object {
    obj(
        name,
        Spec::Vpc(Vpc {
            vni,
            description: String::new(),
        }),
    )
}

fn host(name: &str, addr: &str) -> Object {
    obj(
        name,
        Spec::Host(Host {
            role: HostRole::Compute as i32,
            addresses: vec![HostAddress {
                port: "p0".into(),
                address: addr.into(),
            }],
            ..Host::default()
        }),
    )
}

fn host_route(name: &str, host: &str, prefix: &str, via: &str) -> Object {
    obj(
        name,
        Spec::Route(Route {
            vpc: String::new(),
            host: host.into(),
            prefix: prefix.into(),
            next_hop: via.into(),
            action: RouteAction::Forward as i32,
        }),
    )
}

async fn create(c: &mut Clients, o: Object) -> Result<u64, tonic::Status> {
    c.state
        .create(WriteRequest {
            object: Some(o),
            expected_revision: 0,
        })
        .await
        .map(|r| r.into_inner().revision)
}

async fn revision_and_count(c: &mut Clients) -> (u64, usize) {
    let l = c
        .state
        .list(ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    (l.revision, l.objects.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_class_and_nothing_persisted_on_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let mut c = ready(&server.addr, &ClientConfig::default()).await;

    create(&mut c, vpc("blue", 100)).await.unwrap();
    create(
        &mut c,
        obj(
            "blue-a",
            Spec::Subnet(Subnet {
                vpc: "blue".into(),
                cidr: "10.1.0.0/24".into(),
                gateway_ip: "10.1.0.1".into(),
            }),
        ),
    )
    .await
    .unwrap();
    let before = revision_and_count(&mut c).await;

    let subnet = |name: &str, vpc: &str, cidr: &str, gw: &str| {
        obj(
            name,
            Spec::Subnet(Subnet {
                vpc: vpc.into(),
                cidr: cidr.into(),
                gateway_ip: gw.into(),
            }),
        )
    };
    let cases = [
        (
            subnet("s1", "blue", "10.2.0.0/99", "10.2.0.1"),
            Code::InvalidArgument,
        ),
        (
            subnet("s2", "blue", "10.1.0.0/25", "10.1.0.1"),
            Code::InvalidArgument,
        ),
        (vpc("red", 100), Code::InvalidArgument),
        (vpc("huge", 1 << 24), Code::InvalidArgument),
        (
            subnet("s3", "green", "10.3.0.0/24", "10.3.0.1"),
            Code::NotFound,
        ),
        (vpc("blue", 7), Code::AlreadyExists),
        (
            Object {
                name: "empty".into(),
                ..Object::default()
            },
            Code::InvalidArgument,
        ),
    ];
    for (o, code) in cases {
        let name = o.name.clone();
        let e = create(&mut c, o).await.unwrap_err();
        assert_eq!(e.code(), code, "{name}: {e}");
        assert!(!e.message().is_empty());
    }
    let e = c
        .state
        .delete(DeleteRequest {
            kind: Kind::Vpc as i32,
            name: "blue".into(),
            expected_revision: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");
    assert!(e.message().contains("blue-a"), "{e}");
    let e = c
        .state
        .delete(DeleteRequest {
            kind: Kind::Vpc as i32,
            name: "blue".into(),
            expected_revision: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Aborted, "{e}");
    let e = c
        .state
        .update(WriteRequest {
            object: Some(vpc("nope", 5)),
            expected_revision: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e}");

    assert_eq!(
        revision_and_count(&mut c).await,
        before,
        "a rejection changed the state"
    );

    // (Restarts on the same data, after kill -9 too, are the aegis-lab cp_restart test's.)
    server.shutdown().await;
}

async fn next(stream: &mut tonic::Streaming<WatchResponse>) -> WatchResponse {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("watch message in time")
            .unwrap()
            .expect("stream open");
        // Skip progress messages.
        if m.resync || !m.events.is_empty() {
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_filters_by_host_and_resyncs_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.history = 5;
    let server = Server::start(cfg).await;
    let mut c = ready(&server.addr, &ClientConfig::default()).await;

    create(&mut c, host("c1", "10.0.1.1/24")).await.unwrap();
    create(&mut c, host("c2", "10.0.2.1/24")).await.unwrap();
    let r1 = create(&mut c, host_route("r1", "c1", "10.9.0.0/16", "10.0.1.2"))
        .await
        .unwrap();
    create(&mut c, host_route("r2", "c2", "10.9.0.0/16", "10.0.2.2"))
        .await
        .unwrap();

    // From 0: the whole slice of c1 (both hosts, only its own route).
    let mut w = c
        .state
        .watch(WatchRequest {
            from_revision: 0,
            kinds: vec![],
            host: "c1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut w).await;
    assert!(first.resync);
    let names: Vec<_> = first.objects.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["c1", "c2", "r1"], "{names:?}");

    // Moving r1 to c2 is a delete for c1's watcher; r2's changes are not its business.
    let mut moved = host_route("r1", "c2", "10.8.0.0/16", "10.0.2.3");
    moved.name = "r1".into();
    c.state
        .update(WriteRequest {
            object: Some(moved),
            expected_revision: r1,
        })
        .await
        .unwrap();
    let m = next(&mut w).await;
    assert_eq!(m.events.len(), 1);
    assert_eq!(m.events[0].r#type, EventType::Delete as i32);
    assert_eq!(m.events[0].object.as_ref().unwrap().name, "r1");
    let resume_at = m.revision;
    let r3 = create(&mut c, host_route("r3", "c1", "10.7.0.0/16", "10.0.1.3"))
        .await
        .unwrap();
    let m = next(&mut w).await;
    assert_eq!(
        (m.events.len(), m.events[0].revision, m.revision),
        (1, r3, r3)
    );
    drop(w);

    // Resuming from a revision gives exactly what came after it.
    let mut w = c
        .state
        .watch(WatchRequest {
            from_revision: resume_at,
            kinds: vec![Kind::Route as i32],
            host: "c1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let m = next(&mut w).await;
    assert!(!m.resync);
    assert_eq!(
        m.events.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [r3]
    );
    drop(w);

    // More changes than the history holds: a watcher from revision 1 gets a full resync.
    for i in 0..8 {
        create(&mut c, vpc(&format!("v{i}"), 1000 + i))
            .await
            .unwrap();
    }
    let mut w = c
        .state
        .watch(WatchRequest {
            from_revision: 1,
            kinds: vec![Kind::Vpc as i32],
            host: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let m = next(&mut w).await;
    assert!(m.resync, "compacted history must resync");
    assert_eq!(m.objects.len(), 8);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_make_hosts_alive_until_they_stop() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let mut c = ready(&server.addr, &ClientConfig::default()).await;
    create(&mut c, host("c1", "10.0.1.1/24")).await.unwrap();
    create(&mut c, host("c2", "10.0.2.1/24")).await.unwrap();
    let beat = |h: &str| HeartbeatRequest {
        host: h.into(),
        agent: "test".into(),
        applied_revision: 2,
        cpu_percent: 12.5,
        memory_percent: 40.0,
        ..Default::default()
    };
    let e = c.agents.heartbeat(beat("ghost")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    c.agents.heartbeat(beat("c1")).await.unwrap();
    let hosts = c
        .agents
        .list_hosts(ListHostsRequest {})
        .await
        .unwrap()
        .into_inner();
    let c1 = hosts.hosts.iter().find(|h| h.name == "c1").unwrap();
    let c2 = hosts.hosts.iter().find(|h| h.name == "c2").unwrap();
    assert!(c1.alive && !c1.never_seen);
    assert_eq!((c1.applied_revision, c1.cpu_percent), (2, 12.5));
    assert!(!c2.alive && c2.never_seen);
    assert_eq!(hosts.down_after_ms, 400);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let hosts = c
        .agents
        .list_hosts(ListHostsRequest {})
        .await
        .unwrap()
        .into_inner();
    let c1 = hosts.hosts.iter().find(|h| h.name == "c1").unwrap();
    assert!(!c1.alive, "no heartbeat for longer than the detection time");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = key.cert.pem();
    let key_pem = key.key_pair.serialize_pem();
    let mut cfg = config(dir.path());
    cfg.token = Some("s3cret".into());
    cfg.tls = Some((cert_pem.clone().into_bytes(), key_pem.into_bytes()));
    cfg.peer_client = ClientConfig {
        tls_ca: Some(cert_pem.clone().into_bytes()),
        tls_domain: Some("localhost".into()),
        token: Some("s3cret".into()),
        ..ClientConfig::default()
    };
    let port = cfg.listen.port();
    cfg.advertise = format!("localhost:{port}");
    let server = Server::start(cfg.clone()).await;
    let good = ClientConfig {
        tls_ca: Some(cert_pem.clone().into_bytes()),
        tls_domain: Some("localhost".into()),
        token: Some("s3cret".into()),
        ..ClientConfig::default()
    };
    let addr = format!("127.0.0.1:{port}");
    let mut c = ready(&addr, &good).await;
    create(&mut c, vpc("blue", 100)).await.unwrap();

    let no_token = ClientConfig {
        token: None,
        ..good.clone()
    };
    let mut bad = clients(&addr, &no_token).unwrap();
    let e = bad.state.list(ListRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e}");
    let wrong = ClientConfig {
        token: Some("guess".into()),
        ..good.clone()
    };
    let mut bad = clients(&addr, &wrong).unwrap();
    assert_eq!(
        bad.state
            .list(ListRequest::default())
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    // Plain text to a TLS server fails.
    let mut plain = clients(
        &format!("http://127.0.0.1:{port}"),
        &ClientConfig {
            token: Some("s3cret".into()),
            ..ClientConfig::default()
        },
    )
    .unwrap();
    assert!(plain.state.list(ListRequest::default()).await.is_err());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let _ = ready(&server.addr, &ClientConfig::default()).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = client
        .server_reflection_info(futures::stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply {reply:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for svc in ["DesiredState", "Agents", "Cluster"] {
        assert!(
            names.contains(&format!("aegis.controlplane.v1.{svc}").as_str()),
            "{names:?}"
        );
    }
    drop(replies);
    server.shutdown().await;
}

/// A dataplane's diagnostics server on a free port, answering from `backend`.
struct Diag {
    addr: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), aegis_dataplane::ctl::diag::DiagError>>,
}

impl Diag {
    async fn start(
        backend: std::sync::Arc<aegis_dataplane::ctl::MemoryBackend>,
        token: Option<&str>,
    ) -> Diag {
        let diag = aegis_dataplane::ctl::diag::DiagServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            backend,
            token.map(str::to_owned),
        )
        .unwrap();
        let addr = diag.local_addr().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(diag.serve(async {
            let _ = stopped.await;
        }));
        Diag { addr, stop, task }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// `Diagnostics` end to end on one node: a dataplane's diagnostics server (the in-memory
/// backend) reported in a heartbeat, `Drops` ranked with the rules behind denials and the
/// hosts that cannot be asked, `Capture` passed through, the token presented to the
/// dataplane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_reach_the_dataplanes_of_alive_hosts() {
    use aegis_api::controlplane::v1::{DropsRequest, HostCaptureRequest};
    use aegis_api::dataplane::v1 as pb;
    use aegis_dataplane::ctl::{MemoryBackend, PollMode, WorkerInfo};

    let backend = std::sync::Arc::new(MemoryBackend::new(
        PollMode::Adaptive,
        &[
            WorkerInfo { id: 0, lcore: 1 },
            WorkerInfo { id: 1, lcore: 2 },
        ],
    ));
    backend
        .count_drop(0, "port_spoofed_ip", "source IP not the port's", 2)
        .unwrap();
    backend
        .count_drop(1, "port_spoofed_ip", "source IP not the port's", 1)
        .unwrap();
    backend
        .count_drop(1, "security_group_deny", "denied by a security group", 5)
        .unwrap();
    backend.declare_reason("no_route", "no route").unwrap();
    backend.count_denial("sg-web/no-http", 4).unwrap();
    backend.count_denial("default/ingress-deny", 1).unwrap();
    let diag = Diag::start(backend.clone(), Some("tok")).await;
    let diag_addr = diag.addr.clone();

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.token = Some("tok".into());
    cfg.peer_client.token = Some("tok".into());
    let server = Server::start(cfg).await;
    let client_cfg = ClientConfig {
        token: Some("tok".into()),
        ..ClientConfig::default()
    };
    let mut c = ready(&server.addr, &client_cfg).await;
    for (h, a) in [
        ("c1", "10.0.1.1/24"),
        ("c2", "10.0.2.1/24"),
        ("c3", "10.0.3.1/24"),
    ] {
        create(&mut c, host(h, a)).await.unwrap();
    }
    let beat = |h: &str, diag_address: &str| HeartbeatRequest {
        host: h.into(),
        agent: "dataplane".into(),
        diag_address: diag_address.into(),
        ..Default::default()
    };
    c.agents.heartbeat(beat("c1", &diag_addr)).await.unwrap();
    c.agents.heartbeat(beat("c2", "")).await.unwrap();

    let r = c
        .diagnostics
        .drops(DropsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ranked: Vec<(&str, &str, u64)> = r
        .drops
        .iter()
        .map(|d| (d.host.as_str(), d.reason.as_str(), d.count))
        .collect();
    assert_eq!(
        ranked,
        [
            ("c1", "security_group_deny", 5),
            ("c1", "port_spoofed_ip", 3)
        ]
    );
    let rules: Vec<(&str, u64)> = r.drops[0]
        .rules
        .iter()
        .map(|x| (x.rule.as_str(), x.count))
        .collect();
    assert_eq!(rules, [("sg-web/no-http", 4), ("default/ingress-deny", 1)]);
    assert_eq!(r.hosts, ["c1"]);
    let unreachable: Vec<&str> = r.unreachable.iter().map(|u| u.host.as_str()).collect();
    assert_eq!(unreachable, ["c2", "c3"], "{:?}", r.unreachable);
    assert!(r.unreachable[0].error.contains("no diagnostics address"));
    assert!(r.unreachable[1].error.contains("no heartbeat"));

    let one = c
        .diagnostics
        .drops(DropsRequest { host: "c1".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.hosts, ["c1"]);
    assert!(one.unreachable.is_empty());
    let e = c
        .diagnostics
        .drops(DropsRequest {
            host: "ghost".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    let capture = |host: &str| HostCaptureRequest {
        host: host.into(),
        capture: Some(pb::CaptureRequest {
            count: 1,
            ..Default::default()
        }),
    };
    // Alive again for the detection time (400 ms) whatever the calls above took.
    c.agents.heartbeat(beat("c1", &diag_addr)).await.unwrap();
    c.agents.heartbeat(beat("c2", "")).await.unwrap();
    let mut stream = c
        .diagnostics
        .capture(capture("c1"))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().expect("an event");
    assert!(
        matches!(first.event, Some(pb::capture_event::Event::Started(_))),
        "{first:?}"
    );
    drop(stream);
    let e = c.diagnostics.capture(capture("c2")).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");
    let e = c.diagnostics.capture(capture("ghost")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    server.shutdown().await;
    diag.stop().await;
}

/// `GatewayStatus` end to end on one node: a gateway group of three hosts, two of them with a
/// dataplane (in-memory backends) reported in heartbeats, one MASTER streaming its sessions
/// to the other, a synced BACKUP; the third never sent a heartbeat and is listed as
/// unreachable without failing the call; the master's lag towards the backup is the
/// backup's; a second group has no master; a group filter; an unknown group is NOT_FOUND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_status_judges_each_group_from_its_members() {
    use aegis_api::controlplane::v1::{
        ExternalNetwork, GatewayGroup, GatewayMember, GatewayStatusRequest,
    };
    use aegis_dataplane::ctl::{
        MemoryBackend, PollMode, SyncInfo, SyncPeerInfo, VrrpInfo, VrrpInstanceInfo, WorkerInfo,
    };

    let dataplane = |state: &str, priority: u8, sync: SyncInfo| {
        let b = std::sync::Arc::new(MemoryBackend::new(
            PollMode::Adaptive,
            &[WorkerInfo { id: 0, lcore: 1 }],
        ));
        b.set_vrrp(VrrpInfo {
            instances: vec![
                VrrpInstanceInfo {
                    in_state: Duration::from_secs(90),
                    transitions: 2,
                    master: Some("203.0.113.2".parse().unwrap()),
                    master_priority: 200,
                    ..VrrpInstanceInfo::new("VI_EXT", "ext0", 51, state, priority)
                },
                VrrpInstanceInfo::new("VI_B", "ext0", 52, "BACKUP", priority),
            ],
            ..VrrpInfo::default()
        });
        b.set_sync(Some(SyncInfo {
            vrrp_instance: "VI_EXT".into(),
            sessions: 203,
            ..sync
        }));
        b
    };
    let gw1 = dataplane(
        "MASTER",
        200,
        SyncInfo {
            role: "master".into(),
            address: Some("10.0.0.1".parse().unwrap()),
            synced: true,
            peers: vec![SyncPeerInfo {
                address: "10.0.0.2".parse().unwrap(),
                lag: 5,
                oldest_unacked: Some(Duration::from_millis(30)),
                events: 400,
                datagrams: 20,
                resends: 3,
                acks: 19,
                bulk_resyncs: 1,
                bulk_sessions: 198,
            }],
            ..SyncInfo::default()
        },
    );
    let gw2 = dataplane(
        "BACKUP",
        100,
        SyncInfo {
            role: "backup".into(),
            address: Some("10.0.0.2".parse().unwrap()),
            synced: true,
            installs_done: 203,
            rejected: vec![("auth".into(), 2), ("truncated".into(), 0)],
            ..SyncInfo::default()
        },
    );
    let d1 = Diag::start(gw1, None).await;
    let d2 = Diag::start(gw2, None).await;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let mut c = ready(&server.addr, &ClientConfig::default()).await;
    for (h, a) in [
        ("gw1", "10.0.0.1/24"),
        ("gw2", "10.0.0.2/24"),
        ("gw3", "10.0.0.3/24"),
    ] {
        let mut o = host(h, a);
        if let Some(Spec::Host(h)) = &mut o.spec {
            h.role = HostRole::Gateway as i32;
        }
        create(&mut c, o).await.unwrap();
    }
    create(
        &mut c,
        obj(
            "ext",
            Spec::ExternalNetwork(ExternalNetwork {
                cidr: "203.0.113.0/24".into(),
                gateway_ip: "203.0.113.1".into(),
                vlan: 0,
            }),
        ),
    )
    .await
    .unwrap();
    let group = |vrid: u32, address: &str, members: &[(&str, u32)]| GatewayGroup {
        external_network: "ext".into(),
        members: members
            .iter()
            .map(|(h, p)| GatewayMember {
                host: (*h).into(),
                priority: *p,
            })
            .collect(),
        external_addresses: vec![address.into()],
        vrid,
        tunnel_address: String::new(),
        ..Default::default()
    };
    create(
        &mut c,
        obj(
            "gw-a",
            Spec::GatewayGroup(group(
                51,
                "203.0.113.10",
                &[("gw2", 100), ("gw1", 200), ("gw3", 50)],
            )),
        ),
    )
    .await
    .unwrap();
    create(
        &mut c,
        obj(
            "gw-b",
            Spec::GatewayGroup(group(52, "203.0.113.11", &[("gw1", 200), ("gw2", 100)])),
        ),
    )
    .await
    .unwrap();
    for (h, d) in [("gw1", &d1), ("gw2", &d2)] {
        c.agents
            .heartbeat(HeartbeatRequest {
                host: h.into(),
                agent: "dataplane".into(),
                diag_address: d.addr.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    let r = c
        .diagnostics
        .gateway_status(GatewayStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = r.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["gw-a", "gw-b"]);
    let a = &r.groups[0];
    let members: Vec<(&str, u32, &str)> = a
        .members
        .iter()
        .map(|m| (m.host.as_str(), m.priority, m.state.as_str()))
        .collect();
    assert_eq!(
        members,
        [
            ("gw1", 200, "MASTER"),
            ("gw2", 100, "BACKUP"),
            ("gw3", 50, "UNREACHABLE")
        ]
    );
    assert_eq!(a.masters, ["gw1"]);
    assert!(a.redundant, "{:?}", a.problems);
    assert_eq!(a.problems.len(), 1, "{:?}", a.problems);
    assert!(
        a.problems[0].starts_with("gw3 unreachable: down"),
        "{:?}",
        a.problems
    );
    let backup = &a.members[1];
    assert_eq!(backup.instances.len(), 1, "only VRID 51's instance");
    let vi = &backup.instances[0];
    assert_eq!(
        (
            vi.name.as_str(),
            vi.master.as_str(),
            vi.in_state_ms,
            vi.transitions
        ),
        ("VI_EXT", "203.0.113.2", 90_000, 2)
    );
    let sync = backup.sync.as_ref().expect("its sync follows VI_EXT");
    assert_eq!((sync.role.as_str(), sync.installs_done), ("backup", 203));
    assert_eq!(
        (
            backup.has_sync_lag,
            backup.sync_lag,
            backup.sync_oldest_unacked_ms
        ),
        (true, 5, 30),
        "the master's lag towards it"
    );
    assert_eq!(a.members[0].sync.as_ref().map(|s| s.peers.len()), Some(1));

    let b = &r.groups[1];
    assert!(b.masters.is_empty() && !b.redundant);
    assert_eq!(b.problems[0], "no master");
    assert!(
        b.members.iter().all(|m| m.sync.is_none()),
        "sync follows VI_EXT"
    );

    let one = c
        .diagnostics
        .gateway_status(GatewayStatusRequest {
            group: "gw-b".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.groups.len(), 1);
    let e = c
        .diagnostics
        .gateway_status(GatewayStatusRequest {
            group: "ghost".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    server.shutdown().await;
    d1.stop().await;
    d2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_chooses_standbys_and_replaces_one_whose_host_stops_heartbeating() {
    use aegis_api::controlplane::v1::{ExternalNetwork, GatewayGroup, GatewayMember, GetRequest};

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let mut c = ready(&server.addr, &ClientConfig::default()).await;
    for (h, a) in [
        ("g1", "10.0.0.1/24"),
        ("g2", "10.0.0.2/24"),
        ("g3", "10.0.0.3/24"),
    ] {
        let mut o = host(h, a);
        if let Some(Spec::Host(h)) = &mut o.spec {
            h.role = HostRole::Gateway as i32;
        }
        create(&mut c, o).await.unwrap();
    }
    let ext = Spec::ExternalNetwork(ExternalNetwork {
        cidr: "203.0.113.0/24".into(),
        gateway_ip: "203.0.113.1".into(),
        vlan: 0,
    });
    create(&mut c, obj("ext", ext)).await.unwrap();
    let group = GatewayGroup {
        external_network: "ext".into(),
        members: [("g3", 100), ("g1", 200), ("g2", 150)]
            .into_iter()
            .map(|(h, p)| GatewayMember {
                host: h.into(),
                priority: p,
            })
            .collect(),
        external_addresses: vec!["203.0.113.10".into()],
        vrid: 51,
        ..Default::default()
    };
    create(&mut c, obj("gw", Spec::GatewayGroup(group)))
        .await
        .unwrap();

    // Heartbeats from `alive` every 100 ms until the group's choice satisfies `done`, for
    // at most `rounds` (the detection time is 400 ms here); returns the group.
    async fn beat_until(
        c: &mut Clients,
        alive: &[&str],
        rounds: usize,
        done: impl Fn(&[String]) -> bool,
    ) -> Option<GatewayGroup> {
        for _ in 0..rounds {
            for h in alive {
                c.agents
                    .heartbeat(HeartbeatRequest {
                        host: (*h).into(),
                        agent: "test".into(),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
            let o = c
                .state
                .get(GetRequest {
                    kind: Kind::GatewayGroup as i32,
                    name: "gw".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .object
                .unwrap();
            if let Some(Spec::GatewayGroup(g)) = o.spec {
                let chosen = g
                    .sync_assignment
                    .as_ref()
                    .map(|a| a.members.clone())
                    .unwrap_or_default();
                if done(&chosen) {
                    return Some(g);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    // First choice: the master and one standby by priority.
    let g = beat_until(&mut c, &["g1", "g2", "g3"], 50, |m| m == ["g1", "g2"])
        .await
        .expect("g1 and g2 chosen");
    let first = g.sync_assignment.unwrap().generation;
    assert!(first >= 1);
    // g2's host stops heartbeating: g3 replaces it, with a new generation and the reason.
    let g = beat_until(&mut c, &["g1", "g3"], 50, |m| m == ["g1", "g3"])
        .await
        .expect("g3 replaces g2");
    let a = g.sync_assignment.unwrap();
    assert_eq!(a.generation, first + 1);
    assert!(a.reason.contains("g2 stopped heartbeating"), "{}", a.reason);
    // g2 is back: it stays a spare (nothing changes in 1.5 s, almost 4 detection times).
    let changed = beat_until(&mut c, &["g1", "g2", "g3"], 15, |m| m != ["g1", "g3"]).await;
    assert!(
        changed.is_none(),
        "the choice changed: {:?}",
        changed.and_then(|g| g.sync_assignment)
    );
    server.shutdown().await;
}
