/* Exported wrappers for DPDK's static inline functions, so Rust can call them.
 * Every function here is a thin forwarder; see shim.c. */
#ifndef AEGIS_DPDK_SHIM_H
#define AEGIS_DPDK_SHIM_H

#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_pause.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ethdev.h>
#include <rte_bus_vdev.h>
#include <rte_telemetry.h>
#include <rte_version.h>
#include <rte_ring.h>
#include <rte_eth_ring.h>

/* Constants DPDK builds with RTE_BIT64() or sizeof(), which bindgen cannot evaluate.
 * shim.c checks each one against DPDK's own definition at compile time. */
#define AEGIS_TX_OFFLOAD_MBUF_FAST_FREE 0x10000ULL
#define AEGIS_TX_OFFLOAD_MULTI_SEGS 0x8000ULL
#define AEGIS_RX_OFFLOAD_SCATTER 0x2000ULL
#define AEGIS_RSS_IP 0xa38cULL
#define AEGIS_RSS_UDP 0x20820ULL
#define AEGIS_RSS_TCP 0x10410ULL
#define AEGIS_MEMPOOL_NAMESIZE 26

uint16_t aegis_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t aegis_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *aegis_pktmbuf_alloc(struct rte_mempool *mp);
int aegis_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **pkts, unsigned n);
void aegis_pktmbuf_free(struct rte_mbuf *m);
uint64_t aegis_rdtsc(void);
unsigned aegis_lcore_id(void);
int aegis_errno(void);
void aegis_pause(void);
void aegis_prefetch0(const void *p);

#endif
