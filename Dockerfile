# Aegis dataplane appliance image.
#
# Build:  docker build -t aegis .
# Run (host networking, the dataplane drives the host's NICs or veths):
#   docker run --rm --privileged --network host \
#     -v /etc/aegis:/etc/aegis:ro -v /run/aegis:/run/aegis -v /dev/hugepages:/dev/hugepages \
#     aegis
#   docker exec <container> aegisctl dp --socket /run/aegis/dataplane.sock show interfaces
#
# Privileges and mounts the dataplane needs:
#   --privileged, or at least --cap-add NET_ADMIN --cap-add NET_RAW (af_packet/tap ports,
#       promiscuous mode), SYS_ADMIN (DPDK EAL: mounts, /proc/self/pagemap), IPC_LOCK (locking
#       DPDK memory), and for PCI NICs with vfio-pci also --device /dev/vfio/... and
#       SYS_RAWIO; without --privileged add --security-opt seccomp=unconfined if EAL init
#       fails on a syscall.
#   /etc/aegis/host.toml   the configuration (read-only is fine).
#   /run/aegis             the admin API socket (admin_socket in host.toml), so `aegisctl` on
#                          the host or in another container can reach it.
#   /dev/hugepages         optional hugetlbfs mount for hugepage memory; without it set
#                          `args = ["--no-huge", "-m", "512", ...]` under [eal].
#   network                --network host to use the host's interfaces, or run the container
#                          in a prepared netns (`--network container:...` / a CNI netns)
#                          holding the veths named in the ports' devargs.
#   /var/run/dpdk          EAL runtime files; inside the container is fine, use a distinct
#                          --file-prefix per dataplane if several share a mount.
#
# The build stage runs scripts/install-deps.sh, exactly as the README's quick start does; the
# runtime stage installs only the packages providing the libraries the binaries link, DPDK's
# driver plugins and a few operator tools.

FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY . .
# Packages, Debian's Rust toolchain (rustc-web; no rustup in bookworm) and the release build.
RUN bash scripts/install-deps.sh --no-nextest
# The binaries, and the Debian packages providing the shared libraries they link.
RUN mkdir -p /out \
 && cp target/release/aegis-dataplane target/release/aegis-controlplane target/release/aegisctl /out/ \
 && ldd /out/aegis-dataplane /out/aegis-controlplane /out/aegisctl | awk '/=> \//{print $3}' | sort -u \
    | xargs -r realpath \
    | while read -r f; do dpkg -S "$f" 2>/dev/null || dpkg -S "${f#/usr}"; done \
    | grep -v '^diversion' | cut -d: -f1 | sort -u > /out/runtime-packages.txt \
 && cat /out/runtime-packages.txt

FROM debian:12-slim
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=build /out/runtime-packages.txt /tmp/runtime-packages.txt
# The linked libraries, DPDK's driver plugins (dpdk's Recommends: af_packet, tap, pcap,
# vhost, virtio, i40e, ixgbe, mlx5 ...; loaded at run time, so ldd does not see them), and
# tools operators use next to the dataplane.
RUN apt-get update \
 && xargs -a /tmp/runtime-packages.txt apt-get install -y \
 && apt-get install -y dpdk librte-net-af-packet23 librte-net-tap23 librte-mempool-ring23 \
        iproute2 ethtool procps ca-certificates \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt
COPY --from=build /out/aegis-dataplane /out/aegis-controlplane /out/aegisctl /usr/local/bin/
RUN mkdir -p /etc/aegis /run/aegis
VOLUME ["/run/aegis"]
# The dataplane by default; a control-plane node with
#   docker run --network host --entrypoint aegis-controlplane -v /var/lib/aegis:/var/lib/aegis aegis --id 1 ...
ENTRYPOINT ["/usr/local/bin/aegis-dataplane", "--config", "/etc/aegis/host.toml"]
