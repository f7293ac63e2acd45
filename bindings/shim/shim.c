/* Thin exported forwarders for DPDK static inline functions (see shim.h). */
#include "shim.h"

_Static_assert(AEGIS_TX_OFFLOAD_MBUF_FAST_FREE == RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE, "fast free");
_Static_assert(AEGIS_TX_OFFLOAD_MULTI_SEGS == RTE_ETH_TX_OFFLOAD_MULTI_SEGS, "multi segs");
_Static_assert(AEGIS_RX_OFFLOAD_SCATTER == RTE_ETH_RX_OFFLOAD_SCATTER, "scatter");
_Static_assert(AEGIS_RSS_IP == RTE_ETH_RSS_IP, "rss ip");
_Static_assert(AEGIS_RSS_UDP == RTE_ETH_RSS_UDP, "rss udp");
_Static_assert(AEGIS_RSS_TCP == RTE_ETH_RSS_TCP, "rss tcp");
_Static_assert(AEGIS_MEMPOOL_NAMESIZE == RTE_MEMPOOL_NAMESIZE, "mempool name size");

uint16_t aegis_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t aegis_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *aegis_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int aegis_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **pkts, unsigned n)
{
	return rte_pktmbuf_alloc_bulk(mp, pkts, n);
}

void aegis_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

uint64_t aegis_rdtsc(void)
{
	return rte_rdtsc();
}

unsigned aegis_lcore_id(void)
{
	return rte_lcore_id();
}

int aegis_errno(void)
{
	return rte_errno;
}

void aegis_pause(void)
{
	rte_pause();
}

void aegis_prefetch0(const void *p)
{
	rte_prefetch0(p);
}
