/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dysco's data plane: every packet of a known session rewritten between its
 * session and subsession tuples, with the rules of the reference rewriter
 * (packages/protocol/src/rewriter.ts, docs/session-table.md) and the maps in
 * the layout the protocol package encodes.
 *
 * Entry programs:
 *   dysco_xdp_ingress   XDP, packets from the wire (physical NICs)
 *   dysco_tc_ingress    TC ingress, packets from the wire (veth, virtual devices)
 *   dysco_tc_egress     TC egress, packets from the local stack or applications
 *   dysco_pass_xdp, dysco_pass_tc   do-nothing programs (benchmark baselines)
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "include/layout.h"
#include "include/maps.h"
#include "include/packet.h"
#include "include/rewrite.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dysco_pkt);
} dysco_scratch SEC(".maps");

enum verdict { V_PASS = 0, V_REWRITE = 1, V_DROP = 2, V_ERROR = 3 };

static __always_inline struct dysco_pkt *scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&dysco_scratch, &zero);
}

/* ---- events --------------------------------------------------------------- */

static __always_inline void emit_key_event(__u32 type, __u8 reason, const struct dysco_tuple *key)
{
	struct dysco_event *ev = bpf_ringbuf_reserve(&dysco_events, sizeof(*ev), 0);
	if (!ev) {
		count(C_EVENTS_LOST);
		return;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->type = type;
	ev->reason = reason;
	__builtin_memcpy(&ev->a, key, sizeof(*key));
	bpf_ringbuf_submit(ev, 0);
}

/* ---- atomic updates of values shared by the ingress and egress programs ---- */

/* Serial-number max (or min) of a u32 field whose validity is a flag bit. */
static __always_inline void seq_update(__u32 *field, __u32 *flags, __u32 bit, __u32 v, int want_max)
{
	for (int i = 0; i < 8; i++) {
		__u32 fl = *(volatile __u32 *)flags;
		__u32 cur = *(volatile __u32 *)field;
		if (!(fl & bit)) {
			*(volatile __u32 *)field = v;
			__sync_fetch_and_or(flags, bit);
			return;
		}
		if (want_max ? !seq_gt(v, cur) : !seq_lt(v, cur))
			return;
		if (__sync_val_compare_and_swap(field, cur, v) == cur)
			return;
	}
}

/* FIN/RST bookkeeping of rule 4 on an egress entry (NULL: none). */
static __always_inline void close_tracking(struct dysco_egress *e, const struct dysco_tuple *key, __u8 flags,
					   int outgoing)
{
	if (flags & TCP_RST) {
		if (!e) {
			emit_key_event(DYSCO_EV_SESSION_ENDED, DYSCO_END_RST, key);
		} else if (!(__sync_fetch_and_or(&e->flags, EGRESS_ENDED) & EGRESS_ENDED)) {
			emit_key_event(DYSCO_EV_SESSION_ENDED, DYSCO_END_RST, key);
		}
		return;
	}
	if (!(flags & TCP_FIN) || !e)
		return;
	__u32 mine = outgoing ? EGRESS_FIN_SENT : EGRESS_FIN_RECEIVED;
	__u32 other = outgoing ? EGRESS_FIN_RECEIVED : EGRESS_FIN_SENT;
	__u32 before = __sync_fetch_and_or(&e->flags, mine);
	if ((before & other) && !(before & EGRESS_ENDED)) {
		before = __sync_fetch_and_or(&e->flags, EGRESS_ENDED);
		if (!(before & EGRESS_ENDED))
			emit_key_event(DYSCO_EV_SESSION_ENDED, DYSCO_END_FIN, key);
	}
}

/* ---- egress ------------------------------------------------------------------ */

/*
 * One output of a two-path egress packet on `new_path`: ack carried (old:
 * min(A, m)), SACK filtered, then the path's rewrite.
 */
static __always_inline void finish_on(struct dysco_pkt *p, struct dysco_egress *e, int new_path, int m_valid,
				      __u32 m)
{
	if (p->tcp[13] & TCP_ACK) {
		__u32 a = RD32(p->tcp0, 8);
		if (!new_path && m_valid)
			a = seq_min(a, m);
		WR32(p->tcp, 8, a);
	}
	if (m_valid)
		filter_sack(p, new_path, m);
	apply_path(p, new_path ? &e->new_path : &e->old);
}

static __always_inline int egress_established(void *ctx, enum dysco_ctx kind, struct dysco_pkt *p,
					      struct dysco_egress *e)
{
	__u8 flags = p->flags;
	__sync_fetch_and_add(&e->packets, 1);
	__sync_fetch_and_add(&e->bytes, p->ip_len);
	e->last_seen = bpf_ktime_get_ns();
	__u32 S = pkt_seq(p);
	__u32 end = S + p->payload_len + ((flags & TCP_SYN) ? 1 : 0) + ((flags & TCP_FIN) ? 1 : 0);
	seq_update(&e->snd_high, &e->flags, EGRESS_SND_HIGH, end, 1);
	close_tracking(e, &p->key, flags, 1);

	__u32 ef = *(volatile __u32 *)&e->flags;
	if ((flags & TCP_SYN) || !(ef & EGRESS_TWO_PATH)) {
		apply_path(p, &e->old);
		return write_back(ctx, kind, p) < 0 ? V_ERROR : V_REWRITE;
	}

	/* rule 2: two paths */
	if (ef & EGRESS_CUTOFF_PENDING) {
		e->seq_cutoff = S;
		__sync_fetch_and_and(&e->flags, ~EGRESS_CUTOFF_PENDING);
	}
	ef = *(volatile __u32 *)&e->flags;
	int held = (ef & EGRESS_AWAITING_CUTOVER) != 0;
	__u32 c = e->seq_cutoff;
	int m_valid = (ef & EGRESS_NEW_PATH_MIN_SEQ) != 0;
	__u32 m = e->new_path_min_seq;
	__u32 A = pkt_ack(p);
	int has_ack = (flags & TCP_ACK) != 0;
	int fin = (flags & TCP_FIN) != 0;
	__u32 len = p->payload_len + (fin ? 1 : 0);
	/* ack path: -1 none, 0 old, 1 new */
	int ack_path = !has_ack ? -1 : (!m_valid || seq_leq(A, m)) ? 0 : 1;
	/* data path: -1 none, 0 old, 1 new, 2 straddles the cutoff */
	int data_path;
	if (len == 0)
		data_path = -1;
	else if (held)
		data_path = 0;
	else if (seq_geq(S, c))
		data_path = 1;
	else if (seq_leq(S + len, c))
		data_path = 0;
	else
		data_path = 2;

	if ((flags & TCP_RST) || data_path == 2 || (data_path >= 0 && ack_path >= 0 && ack_path != data_path)) {
		/* two outputs: not in this build of the data plane */
		count(C_SPLIT_FAILED);
		return V_DROP;
	}
	int path = data_path >= 0 ? data_path : (ack_path > 0 ? 1 : 0);
	finish_on(p, e, path, m_valid, m);
	return write_back(ctx, kind, p) < 0 ? V_ERROR : V_REWRITE;
}

static __always_inline int do_egress(void *ctx, enum dysco_ctx kind)
{
	struct dysco_pkt *p = scratch();
	if (!p)
		return V_PASS;
	count(C_PACKETS_SEEN);
	int r = parse(ctx, kind, p);
	if (r == PARSE_PASS)
		return V_PASS;
	if (r == PARSE_MALFORMED) {
		count(C_MALFORMED_PACKET);
		return V_DROP;
	}
	struct dysco_egress *e = bpf_map_lookup_elem(&dysco_egress, &p->key);
	if (e)
		return egress_established(ctx, kind, p, e);
	return V_PASS;
}

/* ---- ingress ----------------------------------------------------------------- */

static __always_inline int ingress_established(void *ctx, enum dysco_ctx kind, struct dysco_pkt *p,
					       struct dysco_ingress *in)
{
	__u8 flags = p->flags;
	__sync_fetch_and_add(&in->packets, 1);
	__sync_fetch_and_add(&in->bytes, p->ip_len);
	in->last_seen = bpf_ktime_get_ns();
	apply_path(p, &in->rewrite);
	__u32 seq = pkt_seq(p);
	__u32 ack = pkt_ack(p);
	if (flags & TCP_ACK) {
		/* ack_high_valid is a byte: the 32-bit word holding it is updated as flags */
		if (!in->ack_high_valid) {
			in->ack_high = ack;
			in->ack_high_valid = 1;
		} else if (seq_gt(ack, in->ack_high)) {
			__u32 cur = in->ack_high;
			for (int i = 0; i < 8 && seq_gt(ack, cur); i++) {
				__u32 seen = __sync_val_compare_and_swap(&in->ack_high, cur, ack);
				if (seen == cur)
					break;
				cur = seen;
			}
		}
	}
	struct dysco_egress *e = bpf_map_lookup_elem(&dysco_egress, &in->egress_key);
	if (e && (*(volatile __u32 *)&e->flags & EGRESS_TWO_PATH)) {
		if (in->path == 1 && (p->payload_len > 0 || (flags & TCP_FIN)))
			seq_update(&e->new_path_min_seq, &e->flags, EGRESS_NEW_PATH_MIN_SEQ, seq, 0);
		if (flags & TCP_ACK) {
			seq_update(&e->peer_ack_high, &e->flags, EGRESS_PEER_ACK_HIGH, ack, 1);
			__u32 ef = *(volatile __u32 *)&e->flags;
			if (!(ef & (EGRESS_DRAINED | EGRESS_AWAITING_CUTOVER | EGRESS_CUTOFF_PENDING)) &&
			    seq_geq(e->peer_ack_high, e->seq_cutoff)) {
				__u32 before = __sync_fetch_and_or(&e->flags, EGRESS_DRAINED);
				if (!(before & EGRESS_DRAINED))
					emit_key_event(DYSCO_EV_OLD_PATH_DRAINED, 0, &in->egress_key);
			}
		}
	}
	close_tracking(e, &in->egress_key, flags, 0);
	return write_back(ctx, kind, p) < 0 ? V_ERROR : V_REWRITE;
}

static __always_inline int do_ingress(void *ctx, enum dysco_ctx kind)
{
	struct dysco_pkt *p = scratch();
	if (!p)
		return V_PASS;
	count(C_PACKETS_SEEN);
	int r = parse(ctx, kind, p);
	if (r == PARSE_PASS)
		return V_PASS;
	if (r == PARSE_MALFORMED) {
		count(C_MALFORMED_PACKET);
		return V_DROP;
	}
	struct dysco_ingress *in = bpf_map_lookup_elem(&dysco_ingress, &p->key);
	if (in)
		return ingress_established(ctx, kind, p, in);
	return V_PASS;
}

/* ---- entry points ---------------------------------------------------------------- */

static __always_inline int tc_verdict(int v)
{
	switch (v) {
	case V_REWRITE:
		count(C_REWRITTEN);
		return TC_ACT_OK;
	case V_DROP:
		return TC_ACT_SHOT;
	case V_ERROR:
		count(C_KERNEL_ERROR);
		return TC_ACT_SHOT;
	default:
		count(C_PASSED);
		return TC_ACT_OK;
	}
}

static __always_inline int xdp_verdict(int v)
{
	switch (v) {
	case V_REWRITE:
		count(C_REWRITTEN);
		return XDP_PASS;
	case V_DROP:
		return XDP_DROP;
	case V_ERROR:
		count(C_KERNEL_ERROR);
		return XDP_DROP;
	default:
		count(C_PASSED);
		return XDP_PASS;
	}
}

SEC("xdp")
int dysco_xdp_ingress(struct xdp_md *ctx)
{
	return xdp_verdict(do_ingress(ctx, CTX_XDP));
}

SEC("tc")
int dysco_tc_ingress(struct __sk_buff *skb)
{
	return tc_verdict(do_ingress(skb, CTX_TC));
}

SEC("tc")
int dysco_tc_egress(struct __sk_buff *skb)
{
	return tc_verdict(do_egress(skb, CTX_TC));
}

SEC("xdp")
int dysco_pass_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("tc")
int dysco_pass_tc(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}
