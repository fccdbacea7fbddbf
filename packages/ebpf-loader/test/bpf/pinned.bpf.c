// SPDX-License-Identifier: GPL-2.0
// A map pinned by name (LIBBPF_PIN_BY_NAME), so a restarted loader finds its contents again.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 128);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} persistent SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} scratch SEC(".maps");

/* Increments persistent[7] on each run. */
SEC("xdp")
int xdp_bump(struct xdp_md *ctx)
{
	__u32 k = 7;
	__u64 one = 1, *v = bpf_map_lookup_elem(&persistent, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&persistent, &k, &one, BPF_NOEXIST);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
