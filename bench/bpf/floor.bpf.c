/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The floor of a session lookup, for `npm run bench -- dataplane`: programs
 * that only find an IPv4 TCP packet's entry in an LRU hash map keyed and
 * sized as the data plane's dysco_egress (the 40-byte tuple, two million
 * entries), and return. Every established-session rewrite does at least
 * this; the benchmark prints it next to the do-nothing program.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "../../packages/xdp/bpf/include/layout.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 2 << 20);
	__type(key, struct dysco_tuple);
	__type(value, struct dysco_egress);
} floor_sessions SEC(".maps");

/* 1: the packet's session is in the map; 0: it is not; -1: not IPv4 TCP. */
static __always_inline int lookup(void *data, void *end)
{
	__u8 *eth = data;
	if ((void *)(eth + 14 + 20 + 20) > end || *(__u16 *)(eth + 12) != bpf_htons(0x0800))
		return -1;
	__u8 *ip = eth + 14;
	if (ip[0] != 0x45 || ip[9] != 6)
		return -1;
	struct dysco_tuple key = {};
	__builtin_memcpy(key.src, ip + 12, 4);
	__builtin_memcpy(key.dst, ip + 16, 4);
	__builtin_memcpy(&key.sport, ip + 20, 4);
	key.family = 4;
	return bpf_map_lookup_elem(&floor_sessions, &key) ? 1 : 0;
}

SEC("tc")
int floor_lookup_tc(struct __sk_buff *skb)
{
	return lookup((void *)(long)skb->data, (void *)(long)skb->data_end) == 1 ? TC_ACT_OK : TC_ACT_SHOT;
}

SEC("xdp")
int floor_lookup_xdp(struct xdp_md *ctx)
{
	return lookup((void *)(long)ctx->data, (void *)(long)ctx->data_end) == 1 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
