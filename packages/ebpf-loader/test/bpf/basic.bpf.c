// SPDX-License-Identifier: GPL-2.0
// Test programs for ebpf-ts-loader: maps of each common type, verdict/rewrite programs, a ring buffer producer.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} hash_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} array_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32); /* 4 bytes: the kernel pads each CPU's copy to 8 */
} percpu_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} percpu_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} lru_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct event {
	__u32 len;
	__u32 seq;
	__u8 head[8];
};

/* Counts runs per CPU in percpu_counts[0] and passes the packet. */
SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *c = bpf_map_lookup_elem(&percpu_counts, &k);
	if (c)
		*c += 1;
	return XDP_PASS;
}

/* Swaps source and destination MAC addresses and bounces the frame (XDP_TX); drops runts. */
SEC("xdp")
int xdp_swap_mac(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 tmp[ETH_ALEN];

	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	return XDP_TX;
}

/* Drops frames whose first byte is 0xff; otherwise writes 0xab into byte 13 (end of ethertype) and accepts. */
SEC("tc")
int tc_rewrite(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u8 *p = data;

	if ((void *)(p + 14) > end)
		return TC_ACT_SHOT;
	if (p[0] == 0xff)
		return TC_ACT_SHOT;
	p[13] = 0xab;
	return TC_ACT_OK;
}

__u32 seq = 0;

/* Emits one ring buffer record per run: packet length, a sequence number and the first 8 bytes. */
SEC("xdp")
int xdp_emit(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct event *e;

	if (data + 8 > end)
		return XDP_ABORTED;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return XDP_DROP;
	e->len = end - data;
	e->seq = seq++; /* not atomic: test runs are sequential */
	__builtin_memcpy(e->head, data, 8);
	bpf_ringbuf_submit(e, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
