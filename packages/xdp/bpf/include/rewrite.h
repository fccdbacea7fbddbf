/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rewriting the scratch copy of the headers (rule 1 and the two-path edits
 * of rule 2, docs/session-table.md sections 4.2 and 4.3), and writing it
 * back with the checksums updated by the difference of the two copies.
 */
#ifndef DYSCO_REWRITE_H
#define DYSCO_REWRITE_H

#include <linux/pkt_cls.h>
#include "packet.h"
#include "maps.h"

static __always_inline int seq_lt(__u32 a, __u32 b) { return (__s32)(a - b) < 0; }
static __always_inline int seq_leq(__u32 a, __u32 b) { return (__s32)(a - b) <= 0; }
static __always_inline int seq_gt(__u32 a, __u32 b) { return (__s32)(a - b) > 0; }
static __always_inline int seq_geq(__u32 a, __u32 b) { return (__s32)(a - b) >= 0; }
static __always_inline __u32 seq_min(__u32 a, __u32 b) { return seq_lt(a, b) ? a : b; }
static __always_inline __u32 seq_max(__u32 a, __u32 b) { return seq_gt(a, b) ? a : b; }

static __always_inline __u32 pkt_seq(struct dysco_pkt *p) { return RD32(p->tcp, 4); }
static __always_inline __u32 pkt_ack(struct dysco_pkt *p) { return RD32(p->tcp, 8); }

/*
 * Rule 1: addresses and ports onto the path's tuple, deltas, window
 * rescaling. A global function: the verifier checks it once, not at every
 * call site.
 */
__attribute__((noinline)) int apply_path(struct dysco_pkt *p, const struct dysco_path *rw)
{
	if (!p || !rw)
		return -1;
	__u8 flags = p->tcp[13];
	int has_ack = (flags & TCP_ACK) != 0;
	if (p->family == 4) {
		__builtin_memcpy(&p->ip[12], rw->tuple.src, 4);
		__builtin_memcpy(&p->ip[16], rw->tuple.dst, 4);
	} else {
		__builtin_memcpy(&p->ip[8], rw->tuple.src, 16);
		__builtin_memcpy(&p->ip[24], rw->tuple.dst, 16);
	}
	__builtin_memcpy(&p->tcp[0], &rw->tuple.sport, 2);
	__builtin_memcpy(&p->tcp[2], &rw->tuple.dport, 2);
	__u32 seq_delta = rw->seq_delta;
	__u32 ack_delta = has_ack ? rw->ack_delta : 0;
	__u32 tsval_delta = rw->tsval_delta;
	__u32 tsecr_delta = has_ack ? rw->tsecr_delta : 0;
	if (seq_delta) {
		__u32 v = RD32(p->tcp, 4) + seq_delta;
		WR32(p->tcp, 4, v);
	}
	if (ack_delta) {
		__u32 v = RD32(p->tcp, 8) + ack_delta;
		WR32(p->tcp, 8, v);
		for (int k = 0; k < MAX_OPT_RECORDS; k++) {
			if (k >= p->nsack)
				break;
			__u32 off = p->sack_off[k];
			if (p->sack_len[k] < 10)
				continue; /* emptied by the two-path filter: NOPs now */
			__u32 nb = ((__u32)p->sack_len[k] - 2) >> 3;
			for (int j = 0; j < 4; j++) {
				if (j >= nb)
					break;
				__u32 at = (off + 2 + 8 * j) & 63;
				if (at > 56)
					break;
				__u32 l = RD32(p->tcp, at) + ack_delta;
				WR32(p->tcp, at, l);
				__u32 at2 = (at + 4) & 63;
				if (at2 > 56)
					break;
				__u32 r = RD32(p->tcp, at2) + ack_delta;
				WR32(p->tcp, at2, r);
			}
		}
	}
	if (tsval_delta || tsecr_delta) {
		for (int k = 0; k < MAX_OPT_RECORDS; k++) {
			if (k >= p->nts)
				break;
			__u32 at = (p->ts_off[k] + 2) & 63;
			if (at > 52)
				break;
			__u32 tsval = RD32(p->tcp, at) + tsval_delta;
			__u32 tsecr = RD32(p->tcp, at + 4) + tsecr_delta;
			WR32(p->tcp, at, tsval);
			WR32(p->tcp, at + 4, tsecr);
		}
	}
	if (rw->ws_from != rw->ws_to && !(flags & TCP_SYN)) {
		__u64 w = RD16(p->tcp, 14);
		w = (w << (rw->ws_from & 15)) >> (rw->ws_to & 15);
		if (w > 0xffff)
			w = 0xffff;
		WR16(p->tcp, 14, (__u32)w);
	}
	return 0;
}

/*
 * Two-path SACK rules before the deltas: on the old path blocks end at most
 * at m and empty ones go; on the new path blocks ending at or below m go.
 * Kept blocks move to the front, the freed bytes become NOPs.
 */
__attribute__((noinline)) int filter_sack(struct dysco_pkt *p, int new_path, __u32 m)
{
	if (!p)
		return -1;
	if (!(p->tcp[13] & TCP_ACK))
		return 0;
	for (int k = 0; k < MAX_OPT_RECORDS; k++) {
		if (k >= p->nsack)
			break;
		__u32 off = p->sack_off[k] & 63;
		__u32 len = p->sack_len[k];
		if (len < 10)
			continue;
		__u32 nb = (len - 2) >> 3;
		__u32 kl[4] = {}, kr[4] = {};
		__u32 kept = 0;
		for (int j = 0; j < 4; j++) {
			if (j >= nb)
				break;
			__u32 at = (off + 2 + 8 * j) & 63;
			if (at > 56)
				break;
			__u32 l = RD32(p->tcp, at);
			__u32 r = RD32(p->tcp, (at + 4) & 63);
			if (!new_path) {
				r = seq_min(r, m);
				if (!seq_lt(l, r))
					continue;
			} else if (!seq_gt(r, m)) {
				continue;
			}
			kl[kept & 3] = l;
			kr[kept & 3] = r;
			kept++;
		}
		for (int b = 0; b < 34; b++) {
			if (b >= len)
				break;
			p->tcp[(off + b) & 63] = 1;
		}
		/* the record follows the option: later edits (deltas) see the kept blocks only */
		p->sack_len[k & 3] = kept > 0 ? 2 + 8 * kept : 0;
		if (kept > 0) {
			p->tcp[off] = 5;
			p->tcp[(off + 1) & 63] = 2 + 8 * kept;
			for (int j = 0; j < 4; j++) {
				if (j >= kept)
					break;
				__u32 at = (off + 2 + 8 * j) & 63;
				if (at > 56)
					break;
				WR32(p->tcp, at, kl[j & 3]);
				WR32(p->tcp, (at + 4) & 63, kr[j & 3]);
			}
		}
	}
	return 0;
}

/*
 * Writes the edited headers back and updates the checksums by the
 * difference of the copies. XDP: the fields are computed here. TC: the
 * kernel's helpers fold the differences in, which keeps CHECKSUM_PARTIAL
 * (only pseudo-header changes reach the field), COMPLETE (skb->csum follows)
 * and NONE right. Trims link padding so the frame ends with the datagram.
 */
/*
 * The checksum differences of the edit, from the two header copies (a
 * global function: verified once). With `fill`, the fields of the copy are
 * updated too (XDP, where no helper does it).
 */
__attribute__((noinline)) int compute_diffs(struct dysco_pkt *p, int fill)
{
	if (!p)
		return -1;
	__u32 ip_diff = 0, pseudo_diff, tcp_diff;
	if (p->family == 4) {
		ip_diff = csum_diff_words(p->ip0, p->ip, 0, 10, 5, 10);
		pseudo_diff = csum_diff_words(p->ip0, p->ip, 6, 10, 99, 10);
	} else {
		pseudo_diff = csum_diff_words(p->ip0, p->ip, 4, 20, 99, 20);
	}
	if (p->new_ip_len && p->new_ip_len != p->ip_len) {
		/* the pseudo-header's TCP length */
		__u32 before = p->ip_len - p->ihl;
		__u32 after = p->new_ip_len - p->ihl;
		pseudo_diff = csum_add16(pseudo_diff, csum_word_diff(before & 0xffff, after & 0xffff));
		if (p->family == 6)
			pseudo_diff = csum_add16(pseudo_diff, csum_word_diff(before >> 16, after >> 16));
	}
	if (p->thl == p->thl0)
		tcp_diff = csum_diff_words(p->tcp0, p->tcp, 0, p->thl / 2, 8, 30);
	else /* the header changed length (NAT tag): the whole of it is replaced */
		tcp_diff = csum_add16(~csum_sum_words(p->tcp0, p->thl0 / 2, 8, 30) & 0xffff,
				      csum_sum_words(p->tcp, p->thl / 2, 8, 30));
	tcp_diff = csum_add16(tcp_diff, p->payload_diff);
	if (fill) {
		if (p->family == 4 && ip_diff) {
			__u16 c = csum_apply(RD16(p->ip, 10), ip_diff);
			WR16(p->ip, 10, c);
		}
		if (tcp_diff || pseudo_diff) {
			__u16 c = csum_apply(RD16(p->tcp, 16), csum_add16(tcp_diff, pseudo_diff));
			WR16(p->tcp, 16, c);
		}
	}
	p->d_ip = ip_diff;
	p->d_pseudo = pseudo_diff;
	p->d_tcp = tcp_diff;
	return 0;
}

/* Whether rewritten packets are routed by their new destination: checked before calling route_tuple, which costs a call. */
static __always_inline int route_on(void)
{
	struct dysco_config *cfg = config();
	return cfg && (cfg->flags & CONFIG_ROUTE);
}

/*
 * At TC egress the stack chose the route and the neighbour for the old
 * destination. When the rewrite changed it (and the agent asked for it),
 * look the new one up and send the packet there: 1 (redirect), or 0 when
 * routing is off or the FIB has no answer (counted). `t`: the rewritten
 * tuple (its family and addresses).
 */
__attribute__((noinline)) int route_tuple(struct __sk_buff *skb, const struct dysco_tuple *t)
{
	if (!skb || !t || !route_on())
		return 0;
	struct bpf_fib_lookup fib;
	__builtin_memset(&fib, 0, sizeof(fib));
	fib.l4_protocol = 6;
	fib.tot_len = 0; /* no MTU check: GSO packets exceed the MTU until segmented */
	fib.ifindex = skb->ifindex;
	if (t->family == 4) {
		fib.family = 2; /* AF_INET */
		__builtin_memcpy(&fib.ipv4_src, t->src, 4);
		__builtin_memcpy(&fib.ipv4_dst, t->dst, 4);
	} else {
		fib.family = 10; /* AF_INET6 */
		__builtin_memcpy(fib.ipv6_src, t->src, 16);
		__builtin_memcpy(fib.ipv6_dst, t->dst, 16);
	}
	/*
	 * A forwarding lookup from the device the stack chose: the kernel answers
	 * only where forwarding is enabled on it (the agent enables it on the
	 * interfaces it serves); otherwise FWD_DISABLED, counted as a miss.
	 */
	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		count(C_ROUTE_MISS);
		return 0;
	}
	/*
	 * No next-hop parameters: the helper routes the packet again on that
	 * device and attaches the new route, so that a packet held for address
	 * resolution is released toward the new next hop, not the stack's.
	 */
	return bpf_redirect_neigh(fib.ifindex, 0, 0, 0) == TC_ACT_REDIRECT ? 1 : 0;
}

/* route_tuple for the scratch copy: only when the destination changed. */
__attribute__((noinline)) int route(struct __sk_buff *skb, struct dysco_pkt *p)
{
	if (!skb || !p)
		return 0;
	struct dysco_tuple t;
	__builtin_memset(&t, 0, sizeof(t));
	t.family = p->family;
	if (p->family == 4) {
		if (RD32(p->ip, 16) == RD32(p->ip0, 16))
			return 0;
		__builtin_memcpy(t.src, &p->ip[12], 4);
		__builtin_memcpy(t.dst, &p->ip[16], 4);
	} else {
		int same = 1;
		for (int i = 24; i < 40; i++)
			if (p->ip[i] != p->ip0[i])
				same = 0;
		if (same)
			return 0;
		__builtin_memcpy(t.src, &p->ip[8], 16);
		__builtin_memcpy(t.dst, &p->ip[24], 16);
	}
	return route_tuple(skb, &t);
}

/*
 * `tail`/`tail_len`: bytes to write right after the (new) TCP header, the
 * new payload of a SYN that gets its metadata; their checksum difference
 * must already be in p->payload_diff.
 */
static __always_inline int write_back_body(void *ctx, enum dysco_ctx kind, struct dysco_pkt *p, void *tail,
					   __u32 tail_len)
{
	if (compute_diffs(p, kind == CTX_XDP) < 0)
		return -1;
	__u32 ip_diff = p->d_ip, pseudo_diff = p->d_pseudo, tcp_diff = p->d_tcp;
	__u32 want = p->l3 + (p->new_ip_len ? p->new_ip_len : p->ip_len);
	if (want > p->frame_len) {
		/* grow first (a SYN's metadata), so that everything below fits */
		if (kind == CTX_XDP) {
			if (bpf_xdp_adjust_tail(ctx, (int)want - (int)p->frame_len) < 0)
				return -1;
		} else if (bpf_skb_change_tail(ctx, want, 0) < 0) {
			return -1;
		}
		p->frame_len = want;
	}
	__u32 iplen = p->family == 4 ? 20 : 40;
	if (ctx_store(ctx, kind, p->l3, p->ip, iplen) < 0)
		return -1;
	__u32 thl = p->thl;
	if (thl < 20 || thl > 60)
		return -1;
	if (ctx_store(ctx, kind, p->l4, p->tcp, thl) < 0)
		return -1;
	if (tail && tail_len > 0 && tail_len <= DYSCO_MAX_SYN_PAYLOAD &&
	    ctx_store(ctx, kind, p->l4 + thl, tail, tail_len) < 0)
		return -1;
	if (kind == CTX_TC) {
		/* The helpers sum in host order (little-endian): our differences are big-endian words. */
		if (p->family == 4 && ip_diff && bpf_l3_csum_replace(ctx, p->l3 + 10, 0, csum_swab(ip_diff), 0) < 0)
			return -1;
		if (tcp_diff && bpf_l4_csum_replace(ctx, p->l4 + 16, 0, csum_swab(tcp_diff), 0) < 0)
			return -1;
		if (pseudo_diff &&
		    bpf_l4_csum_replace(ctx, p->l4 + 16, 0, csum_swab(pseudo_diff), BPF_F_PSEUDO_HDR) < 0)
			return -1;
		/*
		 * CHECKSUM_COMPLETE: skb->csum must follow every byte change nothing
		 * else balances. IPv6 has no header checksum to balance its changed
		 * addresses and payload length (other states ignore this). A
		 * payload change needs nothing: it always ends in a trim below,
		 * after which the kernel treats the packet as CHECKSUM_NONE (its
		 * TCP checksum, kept complete here, is what counts).
		 */
		if (p->family == 6 && pseudo_diff)
			bpf_csum_update(ctx, csum_swab(pseudo_diff));
	}
	if (p->frame_len > want) {
		if (kind == CTX_XDP) {
			if (bpf_xdp_adjust_tail(ctx, (int)want - (int)p->frame_len) < 0)
				return -1;
		} else if (bpf_skb_change_tail(ctx, want, 0) < 0) {
			return -1;
		}
	}
	if (kind == CTX_TC && p->egress)
		return route(ctx, p);
	return 0;
}


/* Sets the datagram length fields of the header copy to `ip_len` (a length change). */
static __always_inline void set_ip_len(struct dysco_pkt *p, __u32 ip_len)
{
	p->new_ip_len = ip_len;
	if (p->family == 4)
		WR16(p->ip, 2, ip_len);
	else
		WR16(p->ip, 4, ip_len - 40);
}

#endif
