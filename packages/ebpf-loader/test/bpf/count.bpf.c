// SPDX-License-Identifier: GPL-2.0
// Counts IPv4 UDP packets to port 4242 at each hook, for attach tests on a veth pair.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define PORT 4242

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline int is_probe(void *data, void *end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP || ip->ihl != 5)
		return 0;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return 0;
	return udp->dest == bpf_htons(PORT);
}

static __always_inline void bump(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &slot);
	if (c)
		__sync_fetch_and_add(c, 1);
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	if (is_probe((void *)(long)ctx->data, (void *)(long)ctx->data_end))
		bump(0);
	return XDP_PASS;
}

SEC("tc")
int tc_count_ingress(struct __sk_buff *skb)
{
	if (is_probe((void *)(long)skb->data, (void *)(long)skb->data_end))
		bump(1);
	return TC_ACT_OK;
}

SEC("tc")
int tc_count_egress(struct __sk_buff *skb)
{
	if (is_probe((void *)(long)skb->data, (void *)(long)skb->data_end))
		bump(2);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
