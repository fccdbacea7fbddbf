/* SPDX-License-Identifier: Apache-2.0 */
/* The maps of the data plane; names and sizes as docs/session-table.md. */
#ifndef DYSCO_MAPS_H
#define DYSCO_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "layout.h"

#ifndef DYSCO_MAX_SESSIONS
#define DYSCO_MAX_SESSIONS (1 << 20)
#endif

/* Maps are pinned by name so a restarted agent finds its sessions again. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 2 * DYSCO_MAX_SESSIONS);
	__type(key, struct dysco_tuple);
	__type(value, struct dysco_egress);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dysco_egress SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 3 * DYSCO_MAX_SESSIONS);
	__type(key, struct dysco_tuple);
	__type(value, struct dysco_ingress);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dysco_ingress SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct dysco_tuple);
	__type(value, struct dysco_pending);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dysco_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct dysco_tuple);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dysco_nattag SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct dysco_tuple);
	__type(value, struct dysco_syn_payload);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dysco_synpayload SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct dysco_policy);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dysco_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dysco_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dysco_events SEC(".maps");

#define DYSCO_MAX_LOCALS 8

/* Written by the agent; the two generator states are advanced by the programs. */
struct dysco_config {
	__u32 port_state; /* port allocator (mulberry32 state) */
	__u32 tag_state;  /* NAT tags (mulberry32 state) */
	__u16 port_low;
	__u16 port_high;
	__u32 policy_count; /* entries of dysco_policy_order in use */
	__u32 local_count;
	__u32 flags; /* CONFIG_* */
	struct dysco_slot locals[DYSCO_MAX_LOCALS];
	__u32 send_key_id; /* key that signs new metadata, with CONFIG_SIGN */
	/*
	 * The clock of lastSeen and created (see now_ns), set by dysco_clock:
	 * one jiffy in ns (0: not calibrated), and CLOCK_MONOTONIC minus
	 * jiffies times that, both taken at once.
	 */
	__u32 clock_tick_ns;
	__u64 clock_offset;
};

/* Route rewritten packets at TC egress by their new destination (FIB lookup, neighbour redirect). */
#define CONFIG_ROUTE 1u
/* A key ring is configured: signed metadata is verified (the reference with `keys`). */
#define CONFIG_KEYS 2u
/* Unsigned metadata is refused. */
#define CONFIG_REQUIRE_AUTH 4u
/* New metadata is signed with send_key_id. */
#define CONFIG_SIGN 8u

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dysco_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dysco_config SEC(".maps");

static __always_inline struct dysco_config *config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&dysco_config, &zero);
}

static __always_inline void count(__u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&dysco_counters, &c);
	if (v)
		*v += 1;
}

#endif
