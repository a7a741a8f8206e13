/* Live ports: ethdev setup with symmetric RSS where the device can hash. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <rte_ethdev.h>

#include "sealtap/capture.h"
#include "sealtap/log.h"

/* A Toeplitz key made of one repeated 16-bit pattern hashes (a, b) and
 * (b, a) alike, so both directions of a connection land on one queue
 * (Woo & Park, "Scalable TCP Session Monitoring with Symmetric RSS"). */
static void symmetric_key(uint8_t *key, size_t len)
{
	for (size_t i = 0; i < len; i++)
		key[i] = (i & 1) ? 0x5a : 0x6d;
}

static int find_port(const char *name, uint16_t *port, char *err,
		     size_t errlen)
{
	if (name && name[0]) {
		if (rte_eth_dev_get_port_by_name(name, port) == 0)
			return 0;
		snprintf(err, errlen,
			 "capture.port '%s' is not a DPDK port; give its "
			 "device name (e.g. net_pcap0) or PCI address, and "
			 "make the device visible to EAL (-a/--vdev)",
			 name);
		return -ENODEV;
	}
	uint16_t n = rte_eth_dev_count_avail();
	if (n == 1) {
		RTE_ETH_FOREACH_DEV(*port) return 0;
	}
	snprintf(err, errlen,
		 n == 0 ? "no DPDK port is available; give --pcap FILE for "
			  "offline input, or EAL arguments that attach a port"
			: "%u DPDK ports are available; choose one with "
			  "capture.port or --port",
		 n);
	return -ENODEV;
}

int capture_port_open(const char *name, uint16_t want_queues, bool allow_rss,
		      uint16_t rx_desc, struct rte_mempool *mp,
		      struct capture_port *out, char *err, size_t errlen)
{
	uint16_t port;
	int rc = find_port(name, &port, err, errlen);
	if (rc < 0)
		return rc;
	struct rte_eth_dev_info info;
	rc = rte_eth_dev_info_get(port, &info);
	if (rc < 0) {
		snprintf(err, errlen, "port %u: cannot read device info: %s",
			 port, rte_strerror(-rc));
		return rc;
	}
	uint64_t hf = info.flow_type_rss_offloads &
		      (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP);
	bool rss = allow_rss && want_queues > 1 &&
		   info.max_rx_queues >= want_queues &&
		   (hf & RTE_ETH_RSS_TCP) && info.hash_key_size > 0 &&
		   info.hash_key_size <= 64;
	uint16_t nq = rss ? want_queues : 1;

	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	uint8_t key[64];
	if (rss) {
		symmetric_key(key, info.hash_key_size);
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_key = key;
		conf.rx_adv_conf.rss_conf.rss_key_len = info.hash_key_size;
		conf.rx_adv_conf.rss_conf.rss_hf = hf;
	}
	rc = rte_eth_dev_configure(port, nq, 1, &conf);
	if (rc < 0) {
		snprintf(err, errlen, "port %u: configure with %u RX queues "
			 "failed: %s", port, nq, rte_strerror(-rc));
		return rc;
	}
	uint16_t nrx = rx_desc, ntx = 512;
	rte_eth_dev_adjust_nb_rx_tx_desc(port, &nrx, &ntx);
	int socket = rte_eth_dev_socket_id(port);
	for (uint16_t q = 0; q < nq; q++) {
		rc = rte_eth_rx_queue_setup(port, q, nrx, socket, NULL, mp);
		if (rc < 0) {
			snprintf(err, errlen, "port %u: RX queue %u setup "
				 "failed: %s", port, q, rte_strerror(-rc));
			return rc;
		}
	}
	/* One TX queue because some PMDs insist; sealtap never transmits. */
	rc = rte_eth_tx_queue_setup(port, 0, ntx, socket, NULL);
	if (rc < 0) {
		snprintf(err, errlen, "port %u: TX queue setup failed: %s",
			 port, rte_strerror(-rc));
		return rc;
	}
	rc = rte_eth_dev_start(port);
	if (rc < 0) {
		snprintf(err, errlen, "port %u: start failed: %s", port,
			 rte_strerror(-rc));
		return rc;
	}
	/* Mirrored traffic is addressed to other hosts. */
	rte_eth_promiscuous_enable(port);
	out->port_id = port;
	out->nb_queues = nq;
	out->rss = rss;
	rte_eth_dev_get_name_by_port(port, out->name);
	char q[16];
	snprintf(q, sizeof(q), "%u", nq);
	log_kv(LOG_LEVEL_INFO, "port started", "port", out->name, "rx_queues",
	       q, "dispatch", rss ? "rss" : "software", NULL);
	return 0;
}

void capture_port_close(struct capture_port *p)
{
	rte_eth_dev_stop(p->port_id);
	rte_eth_dev_close(p->port_id);
}
