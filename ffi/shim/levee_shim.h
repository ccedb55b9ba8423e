/*
 * levee_shim.h - exported wrappers around DPDK's static-inline functions.
 *
 * DPDK implements its fast-path API (rx/tx burst, mbuf alloc/free, rte_lcore_id,
 * rte_rdtsc, rte_errno...) as static inline functions and macros in its headers.
 * Those have no symbol in the shared libraries, so Rust cannot call them directly.
 * Each function here is a one-line wrapper, compiled with the flags pkg-config gives
 * for libdpdk, so the inline code is generated exactly as DPDK intends.
 */
#ifndef LEVEE_SHIM_H
#define LEVEE_SHIM_H

#include <stdint.h>
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_ethdev.h>
#include <rte_dev.h>
#include <rte_hash.h>
#include <rte_jhash.h>
#include <rte_prefetch.h>
#include <rte_version.h>

/* rte_eth_rx_burst: receive up to n packets from (port, queue). */
uint16_t levee_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
/* rte_eth_tx_burst: enqueue up to n packets; the caller still owns pkts[ret..n]. */
uint16_t levee_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

/* rte_pktmbuf_alloc / rte_pktmbuf_free / rte_pktmbuf_append. */
struct rte_mbuf *levee_pktmbuf_alloc(struct rte_mempool *mp);
void levee_pktmbuf_free(struct rte_mbuf *m);
char *levee_pktmbuf_append(struct rte_mbuf *m, uint16_t len);

/* rte_pktmbuf_mtod, data_len and pkt_len of the first segment / whole chain. */
void *levee_pktmbuf_data(const struct rte_mbuf *m);
uint16_t levee_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t levee_pktmbuf_pkt_len(const struct rte_mbuf *m);

/* rte_lcore_id (per-lcore TLS), rte_rdtsc, rte_errno (per-lcore TLS). */
unsigned levee_lcore_id(void);
uint64_t levee_rdtsc(void);
int levee_errno(void);

/* rte_prefetch0: bring a line into all cache levels. */
void levee_prefetch0(const void *p);

/* RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP: built from RTE_BIT64 macros
 * that bindgen cannot evaluate. */
uint64_t levee_rss_hf_ip_tcp_udp(void);

/* rte_jhash: the hash rte_hash uses by default, for benchmarks that call rte_hash. */
uint32_t levee_jhash(const void *key, uint32_t length, uint32_t initval);

#endif
