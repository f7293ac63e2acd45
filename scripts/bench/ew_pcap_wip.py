#!/usr/bin/env python3
"""Traffic and control-plane cache for the east-west and overlay-gateway benchmark scenarios.

Usage: ew_pcap.py [--flows N --out-pcap FILE --in-pcap FILE --cache FILE [--ul-mac MAC]]
                  [--gw-flows N --gw-packets N --gw-pcap FILE --gw-cache FILE [--gw-mac MAC]]

(scripts/bench.sh; either set, or both.)

The set-up is host a of dataplane/src/testkit/overlay.rs, reduced to what the scenarios use:

    host a: ul0 10.88.0.11/24 (MAC --ul-mac), vm1 = port b1 (blue-a 10.1.1.11, 02:00:00:00:01:01)
    host b: underlay 10.88.0.12, port b2 (blue-a 10.1.1.12, 02:00:00:00:01:02) on its vm1
    VPC blue, VNI 100, subnet blue-a 10.1.1.0/24 (gateway 10.1.1.1)
    security group "default" on both ports: egress to anywhere, ingress from the group's members

Writes (no scapy: pcap bytes with struct, valid IPv4 header checksums):
- --out-pcap: what b1 sends, one 60-byte frame (64 on the wire) per UDP flow, b1's MAC ->
  the router MAC 02:ae:00:00:00:01, 10.1.1.11 -> 10.1.1.12, flow i = source port
  1024 + i % 50000, destination port 1 + i // 50000 (the flows of benches/eastwest.rs);
- --in-pcap: what host b sends host a for b1, one Geneve packet per flow: outer Ethernet
  (host b's underlay MAC -> --ul-mac), IPv4 10.88.0.12 -> 10.88.0.11 (TTL 64, DF), UDP
  49152 + hash -> 6081 (checksum 0), Geneve VNI 100 (no options), inner 60-byte frame
  router MAC -> b1's MAC, 10.1.1.12 -> 10.1.1.11 TTL 63 (host b routed it), the flows
  above with the ports swapped (b2's replies);
- --cache: host a's control-plane cache file (`aegis-dataplane --controlplane-cache`,
  dataplane/src/daemon/feed.rs `CacheFile`, version 1): no addresses or routes of its own
  (host.toml has ul0's address and host b's neighbour) and the overlay objects, in the JSON
  shape `aegisctl get -o json` prints (enumerations as numbers).

The overlay gateway ("aegis nat (overlay gateway)"), the set-up of the testkit's
gateway_objects reduced to source NAT: gateway group gw (member host g, underlay 10.88.0.13,
tunnel address 10.88.0.100, external network ext 203.0.113.0/24, external address
203.0.113.10) serves VPC blue through SnatRule blue-out (the whole VPC, endpoint-dependent).
- --gw-pcap: what compute host a sends the gateway group: --gw-packets Geneve packets
  (110 bytes), 10.88.0.11 -> the tunnel address 10.88.0.100 (outer MACs host a's underlay
  -> --gw-mac), VNI 100, inner frame router MAC -> the gateway MAC 02:ae:00:00:00:02 (host
  a's VPC router routed it: TTL 63), UDP 10.1.1.11 -> an external host; --gw-flows flows
  (flow i: source port 1024 + i % 50000, destination 198.51.100.(1 + i % 250) port 443 +
  i // 12500), the packets going round them in order;
- --gw-cache: host g's control-plane cache (the objects above plus hosts a and b, VPC blue,
  its subnet, security group and ports b1, b2).
"""
import argparse
import json
import struct

ROUTER_MAC = "02:ae:00:00:00:01"
B1_MAC = "02:00:00:00:01:01"
B2_MAC = "02:00:00:00:01:02"
UL_MAC_B = "02:0b:00:00:00:01"
UL_A, UL_B = "10.88.0.11", "10.88.0.12"
B1_IP, B2_IP = "10.1.1.11", "10.1.1.12"
VNI = 100
GENEVE_PORT = 6081
PROTO_UDP = 17
FRAME = 60  # bytes stored per inner frame: 64 on the wire with the FCS


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4_header(total_len, ident, ttl, proto, src, dst, df):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total_len, ident, 0x4000 if df else 0,
                    ttl, proto, 0, ip4(src), ip4(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:]


def udp_ipv4(src, dst, sport, dport, ttl, ident, payload_len, with_checksum, df=False):
    """IPv4 + UDP header + zero payload of `payload_len` bytes."""
    udp_len = 8 + payload_len
    payload = bytes(payload_len)
    c = 0
    if with_checksum:
        pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, PROTO_UDP, udp_len)
        c = csum(pseudo + struct.pack("!HHHH", sport, dport, udp_len, 0) + payload) or 0xFFFF
    return (ipv4_header(20 + udp_len, ident, ttl, PROTO_UDP, src, dst, df)
            + struct.pack("!HHHH", sport, dport, udp_len, c) + payload)


def flow_ports(i):
    return 1024 + i % 50000, 1 + i // 50000


def inner_frame(dst_mac, src_mac, src, dst, sport, dport, ttl, ident):
    payload = FRAME - 14 - 20 - 8
    return (mac(dst_mac) + mac(src_mac) + b"\x08\x00"
            + udp_ipv4(src, dst, sport, dport, ttl, ident, payload, True))


def flow_hash(src, dst, proto, sport, dport):
    """dataplane/src/wire/geneve.rs flow_hash (the outer UDP source port's entropy)."""
    m = (1 << 64) - 1
    a = (int.from_bytes(ip4(src), "big") << 32) | int.from_bytes(ip4(dst), "big")
    b = (sport << 24) | (dport << 8) | proto
    h = ((a * 0x9E3779B97F4A7C15) & m) ^ b
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & m
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & m
    h ^= h >> 33
    return (h ^ (h >> 32)) & 0xFFFFFFFF


def geneve_packet(ul_mac, inner, sport_hash, ident):
    geneve = struct.pack("!BBHI", 0, 0, 0x6558, VNI << 8) + inner
    udp_len = 8 + len(geneve)
    udp = struct.pack("!HHHH", 49152 + sport_hash % 16384, GENEVE_PORT, udp_len, 0)
    ip = ipv4_header(20 + udp_len, ident, 64, PROTO_UDP, UL_B, UL_A, True)
    return mac(ul_mac) + mac(UL_MAC_B) + b"\x08\x00" + ip + udp + geneve


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", i // 1_000_000, i % 1_000_000, len(fr), len(fr)))
            f.write(fr)


GATEWAY_MAC = "02:ae:00:00:00:02"
UL_MAC_A = "02:0a:00:00:00:01"
UL_G, TUNNEL = "10.88.0.13", "10.88.0.100"
EXT_ADDRESS = "203.0.113.10"


def obj(name, kind, spec):
    return {"name": name, "created_revision": 1, "modified_revision": 1, "spec": {kind: spec}}


def gw_flow(i):
    """Flow i of the gateway pcap: (source port, destination address, destination port)."""
    return 1024 + i % 50000, f"198.51.100.{1 + i % 250}", 443 + i // 12500


def gw_packet(gw_mac, i, ident):
    sport, dst, dport = gw_flow(i)
    inner = inner_frame(GATEWAY_MAC, ROUTER_MAC, B1_IP, dst, sport, dport, 63, ident)
    h = flow_hash(B1_IP, dst, PROTO_UDP, sport, dport)
    geneve = struct.pack("!BBHI", 0, 0, 0x6558, VNI << 8) + inner
    udp_len = 8 + len(geneve)
    udp = struct.pack("!HHHH", 49152 + h % 16384, GENEVE_PORT, udp_len, 0)
    ip = ipv4_header(20 + udp_len, ident, 64, PROTO_UDP, UL_A, TUNNEL, True)
    return mac(gw_mac) + mac(UL_MAC_A) + b"\x08\x00" + ip + udp + geneve


def gw_cache():
    """Gateway host g's cache: the east-west objects plus the north-south ones."""
    c = cache()
    c["host"] = "g"
    c["objects"] += [
        obj("g", "Host", {"role": 2, "underlay_address": UL_G}),
        obj("ext", "ExternalNetwork", {"cidr": "203.0.113.0/24", "gateway_ip": "203.0.113.1",
                                       "vlan": 0}),
        obj("gw", "GatewayGroup", {"external_network": "ext",
                                   "members": [{"host": "g", "priority": 200}],
                                   "external_addresses": [EXT_ADDRESS], "vrid": 10,
                                   "tunnel_address": TUNNEL}),
        obj("blue-out", "SnatRule", {"vpc": "blue", "subnet": "", "gateway_group": "gw",
                                     "external_address": EXT_ADDRESS}),
    ]
    return c


def cache():
    def host(name, ul):
        return obj(name, "Host", {"role": 1, "underlay_address": ul,
                                  "addresses": [{"port": "ul0", "address": f"{ul}/24"}]})

    def port(name, m, ip, host_name):
        return obj(name, "Port", {"vpc": "blue", "subnet": "blue-a", "mac": m, "ips": [ip],
                                  "host": host_name, "device": "vm1",
                                  "security_groups": ["default"]})

    rule = lambda rid, direction, group: {  # noqa: E731
        "id": rid, "direction": direction, "protocol": "any", "port_min": 0, "port_max": 0,
        "remote_cidr": "", "remote_group": group, "priority": 10, "action": 1}
    objects = [
        host("a", UL_A),
        host("b", UL_B),
        obj("blue", "Vpc", {"vni": VNI, "description": "east-west benchmark"}),
        obj("blue-a", "Subnet", {"vpc": "blue", "cidr": "10.1.1.0/24",
                                 "gateway_ip": "10.1.1.1"}),
        # Direction 2 = egress, 1 = ingress; action 1 = allow.
        obj("default", "SecurityGroup", {"rules": [rule("egress-all", 2, ""),
                                                   rule("same-group", 1, "default")]}),
        port("b1", B1_MAC, B1_IP, "a"),
        port("b2", B2_MAC, B2_IP, "b"),
    ]
    return {"version": 1, "host": "a", "revision": 1, "addresses": [], "routes": [],
            "objects": objects}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--flows", type=int)
    p.add_argument("--out-pcap")
    p.add_argument("--in-pcap")
    p.add_argument("--cache")
    p.add_argument("--ul-mac", default=UL_MAC_A, help="host a's ul0 MAC")
    p.add_argument("--gw-flows", type=int)
    p.add_argument("--gw-packets", type=int)
    p.add_argument("--gw-pcap")
    p.add_argument("--gw-cache")
    p.add_argument("--gw-mac", default="02:0c:00:00:00:01", help="host g's ul0 MAC")
    a = p.parse_args()
    ew = (a.flows, a.out_pcap, a.in_pcap, a.cache)
    gw = (a.gw_flows, a.gw_packets, a.gw_pcap, a.gw_cache)
    if any(ew) and not all(ew):
        p.error("--flows, --out-pcap, --in-pcap and --cache go together")
    if any(gw) and not all(gw):
        p.error("--gw-flows, --gw-packets, --gw-pcap and --gw-cache go together")
    if not any(ew) and not any(gw):
        p.error("nothing to write")
    if all(gw):
        if not 1 <= a.gw_flows <= min(a.gw_packets, 50000 * 60000):
            p.error("--gw-flows must be 1..--gw-packets")
        write_pcap(a.gw_pcap, [gw_packet(a.gw_mac, i % a.gw_flows, i & 0xFFFF)
                               for i in range(a.gw_packets)])
        with open(a.gw_cache, "w") as f:
            json.dump(gw_cache(), f, indent=1)
            f.write("\n")
    if not all(ew):
        return
    if not 1 <= a.flows <= 50000 * 65535:
        p.error("--flows out of range")
    out, inn = [], []
    for i in range(a.flows):
        sport, dport = flow_ports(i)
        ident = i & 0xFFFF
        out.append(inner_frame(ROUTER_MAC, B1_MAC, B1_IP, B2_IP, sport, dport, 64, ident))
        inner = inner_frame(B1_MAC, ROUTER_MAC, B2_IP, B1_IP, dport, sport, 63, ident)
        h = flow_hash(B2_IP, B1_IP, PROTO_UDP, dport, sport)
        inn.append(geneve_packet(a.ul_mac, inner, h, ident))
    write_pcap(a.out_pcap, out)
    write_pcap(a.in_pcap, inn)
    with open(a.cache, "w") as f:
        json.dump(cache(), f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
