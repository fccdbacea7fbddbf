/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Parsing, in one place for the XDP and the TC context. The headers are
 * copied into a per-CPU scratch record (`struct dysco_pkt`), edited there,
 * and written back once: every field access is to a fixed-size buffer the
 * verifier can bound, and the checksum difference is the difference of the
 * two copies. What passes, what drops: docs/session-table.md section 4.1.
 */
#ifndef DYSCO_PACKET_H
#define DYSCO_PACKET_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "layout.h"
#include "csum.h"

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_URG 0x20

#define MAX_OPT_RECORDS 4

/* The context a program runs in: both share every function below. */
enum dysco_ctx { CTX_XDP = 0, CTX_TC = 1 };

struct dysco_pkt {
	__u32 l3;          /* offset of the IP header in the frame */
	__u32 l4;          /* offset of the TCP header */
	__u32 ip_len;      /* IP datagram length (total length, or 40 + payload length) */
	__u32 frame_len;   /* bytes in the frame */
	__u32 payload_len; /* TCP payload bytes */
	__u8 family;
	__u8 ihl;          /* IPv4 header length with options; 40 for IPv6 */
	__u8 thl;          /* TCP header length */
	__u8 flags;        /* TCP flags (byte 13) as received */
	__u8 nsack, nts, fastopen, has_nat_tag;
	__u8 nat_tag_off, pad0[3];
	__u32 nat_tag;
	__u8 sack_off[MAX_OPT_RECORDS];
	__u8 sack_len[MAX_OPT_RECORDS];
	__u8 ts_off[MAX_OPT_RECORDS];
	__u8 ip[40];       /* fixed IP header (20 or 40 bytes), edited */
	__u8 ip0[40];      /* as received */
	__u8 tcp[64];      /* TCP header with options, edited */
	__u8 tcp0[64];     /* as received */
	struct dysco_tuple key; /* the packet's own tuple */
	__u32 new_ip_len;   /* datagram length after a length change (0: unchanged) */
	__u32 thl0;         /* TCP header length as received (p->thl may change: NAT tag) */
	__u32 d_ip, d_pseudo, d_tcp; /* checksum differences of the edit (compute_diffs) */
	__u32 egress;       /* TC egress: a rewritten destination is routed again */
	__u32 payload_diff; /* checksum difference of payload bytes removed or moved */
};

enum parse_result { PARSE_TCP = 0, PARSE_PASS = 1, PARSE_MALFORMED = 2 };

static __always_inline int ctx_load(void *ctx, enum dysco_ctx kind, __u32 off, void *to, __u32 len)
{
	if (kind == CTX_XDP)
		return bpf_xdp_load_bytes(ctx, off, to, len);
	return bpf_skb_load_bytes(ctx, off, to, len);
}

static __always_inline int ctx_store(void *ctx, enum dysco_ctx kind, __u32 off, void *from, __u32 len)
{
	if (kind == CTX_XDP)
		return bpf_xdp_store_bytes(ctx, off, from, len);
	return bpf_skb_store_bytes(ctx, off, from, len, 0);
}

/*
 * Copies `len` (a constant) bytes at `off` straight from the packet when
 * they are in its linear part, else through the helper: the common case
 * costs no helper call.
 */
/* The packet's linear part, for direct access: [*data, *end). */
#define CTX_BOUNDS(ctx, kind, data, end)                                           \
	do {                                                                       \
		if ((kind) == CTX_XDP) {                                           \
			data = (void *)(long)((struct xdp_md *)(ctx))->data;        \
			end = (void *)(long)((struct xdp_md *)(ctx))->data_end;     \
		} else {                                                           \
			data = (void *)(long)((struct __sk_buff *)(ctx))->data;     \
			end = (void *)(long)((struct __sk_buff *)(ctx))->data_end;  \
		}                                                                  \
	} while (0)

static __always_inline int ctx_copy(void *ctx, enum dysco_ctx kind, __u32 off, void *to, const __u32 len)
{
	void *data, *end;
	CTX_BOUNDS(ctx, kind, data, end);
	if (off <= 255) {
		void *src = data + (off & 255);
		if (src + len <= end) {
			__builtin_memcpy(to, src, len);
			return 0;
		}
	}
	return ctx_load(ctx, kind, off, to, len);
}

static __always_inline __u32 ctx_len(void *ctx, enum dysco_ctx kind)
{
	if (kind == CTX_XDP)
		return bpf_xdp_get_buff_len(ctx);
	return ((struct __sk_buff *)ctx)->len;
}

struct opt_walk {
	struct dysco_pkt *p;
	__u32 i;
	__u32 end;
	int err;
};

/* One option (bpf_loop callback): verified once, whatever the option area holds. */
static long walk_one(__u32 n, void *arg)
{
	struct opt_walk *w = arg;
	struct dysco_pkt *p = w->p;
	__u32 i = w->i;
	if (i >= w->end || i >= 60)
		return 1;
	__u8 kind = p->tcp[i & 63];
	if (kind == 0)
		return 1;
	if (kind == 1) {
		w->i = i + 1;
		return 0;
	}
	if (i + 1 >= w->end)
		goto bad;
	__u32 len = p->tcp[(i + 1) & 63];
	if (len < 2 || i + len > w->end)
		goto bad;
	switch (kind) {
	case 2:
		if (len != 4)
			goto bad;
		break;
	case 3:
		if (len != 3)
			goto bad;
		break;
	case 4:
		if (len != 2)
			goto bad;
		break;
	case 5:
		if (len < 10 || ((len - 2) & 7) != 0)
			goto bad;
		if (p->nsack < MAX_OPT_RECORDS) {
			p->sack_off[p->nsack & 3] = i;
			p->sack_len[p->nsack & 3] = len;
			p->nsack++;
		}
		break;
	case 8:
		if (len != 10)
			goto bad;
		if (p->nts < MAX_OPT_RECORDS) {
			p->ts_off[p->nts & 3] = i;
			p->nts++;
		}
		break;
	case 34:
		p->fastopen = 1;
		break;
	case 254:
		if (len >= 4 && p->tcp[(i + 2) & 63] == 0xf9 && p->tcp[(i + 3) & 63] == 0x89)
			p->fastopen = 1;
		break;
	case 253:
		if (len == 8 && !p->has_nat_tag && p->tcp[(i + 2) & 63] == 0x44 && p->tcp[(i + 3) & 63] == 0x59) {
			p->has_nat_tag = 1;
			p->nat_tag_off = i;
			p->nat_tag = RD32(p->tcp, (i + 4) & 63);
		}
		break;
	}
	w->i = i + len;
	return 0;
bad:
	w->err = 1;
	return 1;
}

/*
 * Walks the option area of p->tcp with the reference's rules; records the
 * SACK, timestamp, NAT-tag and Fast Open options. Returns -1 for malformed.
 */
static __always_inline int walk_options(struct dysco_pkt *p)
{
	p->nsack = 0;
	p->nts = 0;
	p->fastopen = 0;
	p->has_nat_tag = 0;
	struct opt_walk w = { .p = p, .i = 20, .end = p->thl, .err = 0 };
	bpf_loop(40, walk_one, &w, 0);
	return w.err ? -1 : 0;
}

/* Ethernet, then IPv4 or IPv6, then TCP, validated as the reference does. */
static __always_inline int parse(void *ctx, enum dysco_ctx kind, struct dysco_pkt *p)
{
	__u8 eth[ETH_HLEN];
	__builtin_memset(&p->key, 0, sizeof(p->key));
	p->new_ip_len = 0;
	p->payload_diff = 0;
	p->egress = 0;
	p->frame_len = ctx_len(ctx, kind);
	if (ctx_copy(ctx, kind, 0, eth, ETH_HLEN) < 0)
		return PARSE_PASS;
	__u16 proto = ((__u16)eth[12] << 8) | eth[13];
	p->l3 = ETH_HLEN;
	if (p->frame_len < ETH_HLEN + 1)
		return PARSE_PASS;
	__u32 room = p->frame_len - ETH_HLEN;
	if (proto == ETH_P_IP) {
		if (room < 20 || ctx_copy(ctx, kind, ETH_HLEN, p->ip, 20) < 0)
			return PARSE_PASS;
		if ((p->ip[0] >> 4) != 4 || p->ip[9] != 6)
			return PARSE_PASS;
		__u32 frag = RD16(p->ip, 6);
		if ((frag & 0x2000) || (frag & 0x1fff))
			return PARSE_PASS;
		__u32 ihl = (p->ip[0] & 0x0f) * 4;
		if (ihl < 20)
			return PARSE_MALFORMED;
		__u32 total = RD16(p->ip, 2);
		if (total > room || total < ihl + 20)
			return PARSE_MALFORMED;
		p->family = 4;
		p->ihl = ihl;
		p->ip_len = total;
		__builtin_memcpy(p->key.src, &p->ip[12], 4);
		__builtin_memcpy(p->key.dst, &p->ip[16], 4);
	} else if (proto == ETH_P_IPV6) {
		if (room < 40 || ctx_copy(ctx, kind, ETH_HLEN, p->ip, 40) < 0)
			return PARSE_PASS;
		if ((p->ip[0] >> 4) != 6 || p->ip[6] != 6)
			return PARSE_PASS;
		__u32 plen = RD16(p->ip, 4);
		if (40 + plen > room || plen < 20)
			return PARSE_MALFORMED;
		p->family = 6;
		p->ihl = 40;
		p->ip_len = 40 + plen;
		__builtin_memcpy(p->key.src, &p->ip[8], 16);
		__builtin_memcpy(p->key.dst, &p->ip[24], 16);
	} else {
		return PARSE_PASS;
	}
	p->l4 = ETH_HLEN + p->ihl;
	if (ctx_copy(ctx, kind, p->l4, p->tcp, 20) < 0)
		return PARSE_MALFORMED;
	__u32 thl = (p->tcp[12] >> 4) * 4;
	if (thl < 20 || p->ihl + thl > p->ip_len)
		return PARSE_MALFORMED;
	p->thl = thl;
	p->thl0 = thl;
	if (thl > 20) {
		/* all 40 option bytes at once when the packet has them (bytes past thl are never used) */
		if (ctx_copy(ctx, kind, p->l4 + 20, &p->tcp[20], 40) < 0) {
			__u32 more = thl - 20;
			if (more < 1 || more > 40 || ctx_load(ctx, kind, p->l4 + 20, &p->tcp[20], more) < 0)
				return PARSE_MALFORMED;
		}
	}
	if (walk_options(p) < 0)
		return PARSE_MALFORMED;
	p->flags = p->tcp[13];
	p->payload_len = p->ip_len - p->ihl - thl;
	__builtin_memcpy(&p->key.sport, &p->tcp[0], 2);
	__builtin_memcpy(&p->key.dport, &p->tcp[2], 2);
	p->key.family = p->family;
	__builtin_memcpy(p->ip0, p->ip, 40);
	__builtin_memcpy(p->tcp0, p->tcp, 64);
	return PARSE_TCP;
}

#endif
