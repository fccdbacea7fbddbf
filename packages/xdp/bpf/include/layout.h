/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Records of the session-table maps, byte for byte as documented in
 * docs/session-table.md and encoded by packages/protocol/src/table-layout.ts.
 * Addresses and the two tuple ports are in network order (copied from the
 * packet); every other integer is little-endian. Padding is zero.
 */
#ifndef DYSCO_LAYOUT_H
#define DYSCO_LAYOUT_H

#include <linux/types.h>

#define DYSCO_MAX_CHAIN 8
#define DYSCO_MAX_SYN_PAYLOAD 256

struct dysco_tuple {
	__u8 src[16];
	__u8 dst[16];
	__be16 sport;
	__be16 dport;
	__u8 family;
	__u8 pad[3];
} __attribute__((aligned(4))); /* where it sits in every record: word loads and stores */

struct dysco_path {
	struct dysco_tuple tuple;
	__u32 seq_delta;
	__u32 ack_delta;
	__u32 tsval_delta;
	__u32 tsecr_delta;
	__u8 ws_from;
	__u8 ws_to;
	__u8 pad[2];
};

#define EGRESS_TWO_PATH (1u << 0)
#define EGRESS_NEW_PATH_MIN_SEQ (1u << 1)
#define EGRESS_PEER_ACK_HIGH (1u << 2)
#define EGRESS_DRAINED (1u << 3)
#define EGRESS_SND_HIGH (1u << 4)
#define EGRESS_FIN_SENT (1u << 5)
#define EGRESS_FIN_RECEIVED (1u << 6)
#define EGRESS_ENDED (1u << 7)
#define EGRESS_SYN_PAYLOAD (1u << 8)
#define EGRESS_CUTOFF_PENDING (1u << 9)
#define EGRESS_AWAITING_CUTOVER (1u << 10)
#define EGRESS_ACK_SENT_HIGH (1u << 11)
#define EGRESS_PEER_END (1u << 12)
#define EGRESS_RECEIVED (1u << 13)

struct dysco_egress {
	struct dysco_path old;
	struct dysco_path new_path;
	__u32 flags;
	__u32 seq_cutoff;
	__u32 new_path_min_seq;
	__u32 peer_ack_high;
	__u32 snd_high;
	__u32 ack_sent_high;
	__u32 peer_end;
	__u32 pad;
	__u64 packets;
	__u64 bytes;
	__u64 last_seen;
};

struct dysco_ingress {
	struct dysco_path rewrite;
	struct dysco_tuple egress_key;
	__u8 path; /* 0 old, 1 new */
	__u8 ack_high_valid;
	__u8 feeds_two_path; /* packets here update the egress entry's two-path state */
	__u8 pad;
	__u64 packets;
	__u64 bytes;
	__u64 last_seen;
	__u32 ack_high;
	__u32 pad2;
};

struct dysco_slot {
	__u8 addr[16];
	__u8 family;
	__u8 pad[3];
};

struct dysco_pending {
	struct dysco_tuple from_subsession;
	__u32 nat_tag;
	__u8 chain_length;
	__u8 pad[3];
	__u64 created;
	struct dysco_slot chain[DYSCO_MAX_CHAIN];
};

struct dysco_syn_payload {
	__u16 length;
	__u16 pad;
	__u8 bytes[DYSCO_MAX_SYN_PAYLOAD];
};

#define POLICY_SRC (1u << 0)
#define POLICY_DST (1u << 1)
#define POLICY_SPORT (1u << 2)
#define POLICY_DPORT (1u << 3)

struct dysco_policy {
	__u32 id;
	__u8 flags;
	__u8 src_length;
	__u8 dst_length;
	__u8 chain_length;
	struct dysco_slot src;
	struct dysco_slot dst;
	__u16 sport_low;
	__u16 sport_high;
	__u16 dport_low;
	__u16 dport_high;
	struct dysco_slot chain[DYSCO_MAX_CHAIN];
};

_Static_assert(sizeof(struct dysco_tuple) == 40, "tuple is 40 bytes");
_Static_assert(sizeof(struct dysco_path) == 60, "path_rewrite is 60 bytes");
_Static_assert(sizeof(struct dysco_egress) == 176, "egress_value is 176 bytes");
_Static_assert(sizeof(struct dysco_ingress) == 136, "ingress_value is 136 bytes");
_Static_assert(sizeof(struct dysco_pending) == 216, "pending_value is 216 bytes");
_Static_assert(sizeof(struct dysco_syn_payload) == 260, "syn_payload_value is 260 bytes");
_Static_assert(sizeof(struct dysco_policy) == 216, "policy_value is 216 bytes");

/* Ring-buffer records: what the agent learns from the packet path. */
#define DYSCO_EV_SESSION_CREATED 1
#define DYSCO_EV_SESSION_ENDED 2
#define DYSCO_EV_OLD_PATH_DRAINED 3

#define DYSCO_ROLE_ORIGINATOR 1
#define DYSCO_ROLE_MIDDLEBOX 2
#define DYSCO_ROLE_LAST_HOP 3

#define DYSCO_SIDE_LEFT 1
#define DYSCO_SIDE_RIGHT 2

#define DYSCO_END_FIN 1
#define DYSCO_END_RST 2

struct dysco_event {
	__u32 type;
	__u8 role;   /* sessionCreated */
	__u8 side;   /* sessionCreated */
	__u8 reason; /* sessionEnded */
	__u8 nat_adopted; /* sessionCreated: c holds the pending session tuple */
	struct dysco_tuple a; /* created: session; ended, drained: the egress key */
	struct dysco_tuple b; /* created: subsession */
	struct dysco_tuple c; /* created: natAdoptedFrom */
};

_Static_assert(sizeof(struct dysco_event) == 128, "event record is 128 bytes");

/* Per-CPU counters: the reference rewriter's, then the data plane's own. */
enum dysco_counter {
	C_MALFORMED_PACKET = 0,
	C_MALFORMED_METADATA,
	C_AUTH_FAILED,
	C_CHAIN_TOO_LONG,
	C_NO_PORT_AVAILABLE,
	C_ENTRY_CONFLICT,
	C_TFO_NOT_STEERED,
	C_NAT_TAG_NO_ROOM,
	C_NO_LOCAL_ADDRESS,
	C_TWO_PATH_SPLIT,
	C_SYN_RETRANSMITTED,
	/* data-plane only */
	C_PACKETS_SEEN,
	C_REWRITTEN,
	C_PASSED,
	C_EVENTS_LOST,
	C_KERNEL_ERROR,
	C_SPLIT_FAILED,
	C_FAST_PATH, /* rewritten by the fast path (the agent adds these to C_REWRITTEN) */
	C_ROUTE_MISS,
	C_UNKNOWN_SESSION,
	C_STALE_SUBSESSION, /* a drop reason of the reference, numbered after the data plane's own */
	C_COUNTERS
};

#endif
