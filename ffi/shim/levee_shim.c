/* See levee_shim.h: one wrapper per static-inline DPDK function levee needs. */
#include "levee_shim.h"

uint16_t levee_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t levee_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *levee_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

void levee_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

char *levee_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

void *levee_pktmbuf_data(const struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

uint16_t levee_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

uint32_t levee_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

unsigned levee_lcore_id(void)
{
	return rte_lcore_id();
}

uint64_t levee_rdtsc(void)
{
	return rte_rdtsc();
}

int levee_errno(void)
{
	return rte_errno;
}

void levee_prefetch0(const void *p)
{
	rte_prefetch0(p);
}

uint32_t levee_jhash(const void *key, uint32_t length, uint32_t initval)
{
	return rte_jhash(key, length, initval);
}

uint64_t levee_rss_hf_ip_tcp_udp(void)
{
	return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
}
