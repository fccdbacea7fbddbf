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
#include <bpf/bpf_core_read.h>
#include "include/layout.h"
#include "include/maps.h"
#include "include/packet.h"
#include "include/rewrite.h"
#include "include/steer.h"

/*
 * Writing a packet back, as global functions: verified once each, not at
 * every call site. `w`, when given, holds the new payload (w->meta).
 */
__attribute__((noinline)) int write_back_tc(struct __sk_buff *skb, struct dysco_pkt *p, struct syn_work *w,
					    __u32 tail_len)
{
	if (!skb || !p)
		return -1;
	if (w && tail_len > 0 && tail_len <= DYSCO_MAX_SYN_PAYLOAD)
		return write_back_body(skb, CTX_TC, p, w->meta, tail_len);
	return write_back_body(skb, CTX_TC, p, 0, 0);
}

__attribute__((noinline)) int write_back_xdp(struct xdp_md *ctx, struct dysco_pkt *p, struct syn_work *w,
					     __u32 tail_len)
{
	if (!ctx || !p)
		return -1;
	if (w && tail_len > 0 && tail_len <= DYSCO_MAX_SYN_PAYLOAD)
		return write_back_body(ctx, CTX_XDP, p, w->meta, tail_len);
	return write_back_body(ctx, CTX_XDP, p, 0, 0);
}

static __always_inline int write_back_w(void *ctx, enum dysco_ctx kind, struct dysco_pkt *p, struct syn_work *w,
					__u32 tail_len)
{
	if (kind == CTX_XDP)
		return write_back_xdp(ctx, p, w, tail_len);
	return write_back_tc(ctx, p, w, tail_len);
}

static __always_inline int write_back(void *ctx, enum dysco_ctx kind, struct dysco_pkt *p)
{
	return write_back_w(ctx, kind, p, 0, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Slot 0: the packet being processed; slot 1: the clone of a two-output packet (nested run). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct dysco_pkt);
} dysco_scratch SEC(".maps");

/*
 * Two outputs (rule 2): the first output is a clone sent with
 * bpf_clone_redirect to the same device's egress, marked; the egress program
 * runs again, nested, on the same CPU, finds the mark and the job below and
 * makes the clone the first output. The original then becomes the second.
 */
#ifndef DYSCO_CLONE_MARK
#define DYSCO_CLONE_MARK 0x40000000u
#endif

enum split_kind { SPLIT_RST = 1, SPLIT_STRADDLE = 2, SPLIT_DATA_ACK = 3 };

struct split_job {
	__u32 active;
	__u32 done;
	__u32 kind;
	__u32 path1; /* path of the first output */
	__u32 cut;   /* straddle: payload bytes before the cutoff */
	__u32 m_valid;
	__u32 m;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct split_job);
} dysco_split SEC(".maps");

#define CHUNK 256

/* Bounce buffer for payload sums and moves (TC only). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[CHUNK + 8]);
} dysco_buf SEC(".maps");

/*
 * The clock of lastSeen and created: CLOCK_MONOTONIC at jiffy resolution,
 * enough for idle timeouts. Once dysco_clock has calibrated it, it is
 * jiffies scaled and offset: the verifier turns bpf_jiffies64 into one load,
 * where the coarse clock's helper costs about half a do-nothing program's
 * run on every packet. Uncalibrated, it is the coarse clock itself.
 */
static __always_inline __u64 now_ns(void)
{
	struct dysco_config *cfg = config();
	__u32 tick = cfg ? *(volatile __u32 *)&cfg->clock_tick_ns : 0;
	if (tick)
		return bpf_jiffies64() * tick + *(volatile __u64 *)&cfg->clock_offset;
	return bpf_ktime_get_coarse_ns();
}

/*
 * Per-entry statistics. Plain adds: one session's packets are handled by one
 * CPU at a time in the common case, and the counts are statistics (idle
 * reclaim reads lastSeen), so a rare lost increment is the better trade
 * than a locked add on every packet.
 */
#define TOUCH(ent, len)                   \
	do {                              \
		(ent)->packets += 1;      \
		(ent)->bytes += (len);    \
		(ent)->last_seen = now_ns(); \
	} while (0)

/* V_FAST*: rewritten by the fast path, counted apart. */
enum verdict { V_PASS = 0, V_REWRITE = 1, V_DROP = 2, V_ERROR = 3, V_REDIRECT = 4, V_FAST = 5, V_FAST_REDIRECT = 6 };

/* write_back's result as a verdict: 1 means rewritten and redirected toward the new destination. */
static __always_inline int verdict_of(int r)
{
	return r < 0 ? V_ERROR : r == 1 ? V_REDIRECT : V_REWRITE;
}

static __always_inline struct dysco_pkt *scratch(__u32 slot)
{
	return bpf_map_lookup_elem(&dysco_scratch, &slot);
}

static __always_inline struct split_job *split_job(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&dysco_split, &zero);
}

/* ---- payload bytes (TC): sums and moves in chunks ----------------------------- */

struct chunk_walk {
	struct __sk_buff *skb;
	__u8 *buf;
	__u32 from; /* source offset in the frame */
	__u32 to;   /* destination offset (moves) */
	__u32 left; /* bytes still to do */
	__u32 sum;  /* big-endian one's-complement sum (sums) */
	int err;
};

/* One chunk of a payload sum: the chunks are even-sized, so alignment holds throughout. */
static long sum_chunk(__u32 i, void *arg)
{
	struct chunk_walk *w = arg;
	if (w->left == 0)
		return 1;
	__u32 n = w->left > CHUNK ? CHUNK : w->left;
	if (n < 1 || n > CHUNK)
		return 1;
	__u32 pad = n & ~3u;
	if (pad > CHUNK - 4)
		pad = CHUNK - 4;
	*(__u32 *)&w->buf[pad] = 0;
	*(__u32 *)&w->buf[pad + 4] = 0;
	if (bpf_skb_load_bytes(w->skb, w->from, w->buf, n) < 0) {
		w->err = 1;
		return 1;
	}
	__u32 words = (n + 3) & ~3u;
	if (words > CHUNK)
		words = CHUNK;
	__s64 r = bpf_csum_diff(0, 0, (__be32 *)w->buf, words, 0);
	if (r < 0) {
		w->err = 1;
		return 1;
	}
	/* the helper sums little-endian words: swap into our big-endian domain */
	w->sum = csum_add16(w->sum, csum_swab(csum_fold32((__u32)r)));
	w->from += n;
	w->left -= n;
	return 0;
}

/* One's-complement sum (big-endian words) of `len` frame bytes at `off`, as if aligned. */
static __always_inline int payload_sum(struct __sk_buff *skb, __u32 off, __u32 len, __u32 *sum)
{
	__u32 zero = 0;
	__u8 *buf = bpf_map_lookup_elem(&dysco_buf, &zero);
	if (!buf)
		return -1;
	struct chunk_walk w = { .skb = skb, .buf = buf, .from = off, .left = len };
	bpf_loop(65536 / CHUNK + 1, sum_chunk, &w, 0);
	if (w.err || w.left)
		return -1;
	*sum = w.sum;
	return 0;
}

static long move_chunk(__u32 i, void *arg)
{
	struct chunk_walk *w = arg;
	if (w->left == 0)
		return 1;
	__u32 n = w->left > CHUNK ? CHUNK : w->left;
	if (n < 1 || n > CHUNK)
		return 1;
	if (bpf_skb_load_bytes(w->skb, w->from, w->buf, n) < 0 ||
	    bpf_skb_store_bytes(w->skb, w->to, w->buf, n, BPF_F_RECOMPUTE_CSUM) < 0) {
		w->err = 1;
		return 1;
	}
	w->from += n;
	w->to += n;
	w->left -= n;
	return 0;
}

/* Moves `len` frame bytes from `from` down to `to` (to < from), keeping skb->csum right. */
static __always_inline int payload_move(struct __sk_buff *skb, __u32 from, __u32 to, __u32 len)
{
	__u32 zero = 0;
	__u8 *buf = bpf_map_lookup_elem(&dysco_buf, &zero);
	if (!buf)
		return -1;
	struct chunk_walk w = { .skb = skb, .buf = buf, .from = from, .to = to, .left = len };
	bpf_loop(65536 / CHUNK + 1, move_chunk, &w, 0);
	return w.err || w.left ? -1 : 0;
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

/*
 * sndHigh, the cutoff of the entry's next reconfiguration, follows only what
 * a genuine sender produces: a SYN never moves it once set (a retransmission
 * has the same ISN), nor does a segment ending more than the largest TCP
 * window (2^30) beyond it. Otherwise one forged segment far ahead would keep
 * the old path from ever draining. As rewriter.ts advanceSndHigh.
 */
#define DYSCO_MAX_TCP_WINDOW (1u << 30)
static __always_inline void snd_high_update(struct dysco_egress *e, __u32 end, int syn)
{
	if (*(volatile __u32 *)&e->flags & EGRESS_SND_HIGH) {
		__u32 cur = *(volatile __u32 *)&e->snd_high;
		if (syn || !seq_gt(end, cur) || end - cur > DYSCO_MAX_TCP_WINDOW)
			return;
	}
	seq_update(&e->snd_high, &e->flags, EGRESS_SND_HIGH, end, 1);
}

/* The highest ack the stack sent, kept the same way (as rewriter.ts advanceAckSent). */
static __always_inline void ack_sent_update(struct dysco_egress *e, __u32 ack)
{
	if (*(volatile __u32 *)&e->flags & EGRESS_ACK_SENT_HIGH) {
		__u32 cur = *(volatile __u32 *)&e->ack_sent_high;
		if (!seq_gt(ack, cur) || ack - cur > DYSCO_MAX_TCP_WINDOW)
			return;
	}
	seq_update(&e->ack_sent_high, &e->flags, EGRESS_ACK_SENT_HIGH, ack, 1);
}

/*
 * Sets one of the two halves of an anchor's completion (DRAINED: what it
 * sent on the old path is acked; RECEIVED: what its peer sent there is
 * received and acked) and reports the old path done when the other half
 * was already set.
 */
static __always_inline void old_path_half(struct dysco_egress *e, const struct dysco_tuple *key, __u32 bit, __u32 other)
{
	__u32 before = __sync_fetch_and_or(&e->flags, bit);
	if (!(before & bit) && (before & other))
		emit_key_event(DYSCO_EV_OLD_PATH_DRAINED, 0, key);
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


static __always_inline void plain_path(struct dysco_path *rw, const struct dysco_tuple *t)
{
	__builtin_memset(rw, 0, sizeof(*rw));
	rw->tuple = *t;
}

static __always_inline void reverse_tuple(struct dysco_tuple *out, const struct dysco_tuple *t)
{
	__builtin_memset(out, 0, sizeof(*out));
	__builtin_memcpy(out->src, t->dst, 16);
	__builtin_memcpy(out->dst, t->src, 16);
	out->sport = t->dport;
	out->dport = t->sport;
	out->family = t->family;
}

static __always_inline int tuple_eq(const struct dysco_tuple *a, const struct dysco_tuple *b)
{
	const __u8 *x = (const __u8 *)a, *y = (const __u8 *)b;
	for (int i = 0; i < (int)sizeof(*a); i++)
		if (x[i] != y[i])
			return 0;
	return 1;
}

/*
 * The entries of a session that ended, lingering until the agent reclaims
 * them, give way to a new connection on the same tuple (its client reused
 * the port): the egress entry, its SYN metadata, and the ingress entries of
 * its paths that answer it.
 */
static __always_inline void remove_ended(const struct dysco_tuple *key, struct dysco_egress *e)
{
	struct dysco_tuple k = *key;
	struct dysco_tuple r;
	__u32 two = *(volatile __u32 *)&e->flags & EGRESS_TWO_PATH;
	reverse_tuple(&r, &e->old.tuple);
	struct dysco_ingress *i = bpf_map_lookup_elem(&dysco_ingress, &r);
	if (i && tuple_eq(&i->egress_key, &k))
		bpf_map_delete_elem(&dysco_ingress, &r);
	if (two) {
		reverse_tuple(&r, &e->new_path.tuple);
		i = bpf_map_lookup_elem(&dysco_ingress, &r);
		if (i && tuple_eq(&i->egress_key, &k))
			bpf_map_delete_elem(&dysco_ingress, &r);
	}
	bpf_map_delete_elem(&dysco_synpayload, &k);
	bpf_map_delete_elem(&dysco_egress, &k);
}

static __always_inline void emit_created(struct syn_work *w, __u8 role, __u8 side, const struct dysco_tuple *session,
					 const struct dysco_tuple *sub, const struct dysco_tuple *adopted)
{
	struct dysco_event *ev = bpf_ringbuf_reserve(&dysco_events, sizeof(*ev), 0);
	if (!ev) {
		count(C_EVENTS_LOST);
		return;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->type = DYSCO_EV_SESSION_CREATED;
	ev->role = role;
	ev->side = side;
	ev->a = *session;
	ev->b = *sub;
	if (adopted) {
		ev->nat_adopted = 1;
		ev->c = *adopted;
	}
	bpf_ringbuf_submit(ev, 0);
}

struct port_walk {
	struct syn_work *w;
	__u32 low;
	__u32 size;
	__u32 start;
	__u32 found; /* port, 0: none */
};

/* One candidate port: free if the reverse subsession is not an ingress key. */
static long port_one(__u32 i, void *arg)
{
	struct port_walk *pw = arg;
	if (i >= pw->size)
		return 1;
	__u32 port = pw->low + (pw->start + i) % pw->size;
	struct syn_work *w = pw->w;
	w->rsub.sport = bpf_htons(port);
	w->rsub.dport = bpf_htons(port);
	if (bpf_map_lookup_elem(&dysco_ingress, &w->rsub))
		return 0;
	pw->found = port;
	return 1;
}

/*
 * Rule 3, sending side: the SYN of `w->session` onto a new subsession toward
 * w->chain[0], with w->chain[1..] as metadata. `pending`/`pending_key`: the
 * pending entry consumed (middlebox), `adopted`: the NAT-changed tuple.
 */
static __always_inline int steer_syn(void *ctx, enum dysco_ctx kind, struct dysco_pkt *p, struct syn_work *w,
				     struct dysco_config *cfg, __u8 role, struct dysco_pending *pending,
				     struct dysco_tuple *pending_key, int adopted)
{
	__u8 fam = p->family;
	for (int i = 0; i < DYSCO_MAX_CHAIN + 1; i++) {
		if (i >= w->chain_len)
			break;
		if (w->chain[i & (META_CHAIN_MAX - 1)].family != fam) {
			count(C_MALFORMED_METADATA);
			return V_DROP;
		}
	}
	if (meta_encode(w, cfg) < 0)
		return V_ERROR;
	if (w->meta_len > DYSCO_MAX_SYN_PAYLOAD) {
		count(C_CHAIN_TOO_LONG);
		return V_DROP;
	}
	/* the subsession: local source, next hop, one port for both ends */
	__builtin_memset(&w->sub, 0, sizeof(w->sub));
	__builtin_memcpy(w->sub.src, w->src.addr, 16);
	__builtin_memcpy(w->sub.dst, w->chain[0].addr, 16);
	w->sub.family = fam;
	__builtin_memset(&w->rsub, 0, sizeof(w->rsub));
	__builtin_memcpy(w->rsub.src, w->chain[0].addr, 16);
	__builtin_memcpy(w->rsub.dst, w->src.addr, 16);
	w->rsub.family = fam;
	__u32 low = cfg->port_low, high = cfg->port_high;
	if (low == 0 || high < low)
		return V_ERROR;
	struct port_walk pw = { .w = w, .low = low, .size = high - low + 1 };
	pw.start = prng_next(&cfg->port_state) % pw.size;
	bpf_loop(65536, port_one, &pw, 0);
	if (!pw.found) {
		count(C_NO_PORT_AVAILABLE);
		return V_DROP;
	}
	w->sub.sport = bpf_htons(pw.found);
	w->sub.dport = bpf_htons(pw.found);

	/* the packet: NAT tag out, metadata in, onto the subsession */
	__u32 in_len = p->ip_len;
	strip_nat_tag(p);
	p->payload_diff = meta_sum(w, w->meta_len);
	set_ip_len(p, p->ihl + p->thl + w->meta_len);
	plain_path(&w->eg.old, &w->sub);
	apply_path(p, &w->eg.old);

	/* entries */
	__u64 now = now_ns();
	__builtin_memset(&w->eg.new_path, 0, sizeof(w->eg) - sizeof(w->eg.old));
	w->eg.flags = EGRESS_SND_HIGH | EGRESS_SYN_PAYLOAD;
	w->eg.snd_high = pkt_seq(p) + 1;
	w->eg.packets = 1;
	w->eg.bytes = in_len;
	w->eg.last_seen = now;
	w->session = p->key;
	bpf_map_update_elem(&dysco_egress, &w->session, &w->eg, BPF_ANY);
	__builtin_memset(&w->sp, 0, sizeof(w->sp));
	w->sp.length = w->meta_len;
	__builtin_memcpy(w->sp.bytes, w->meta, DYSCO_MAX_SYN_PAYLOAD);
	for (__u32 k = 0; k < DYSCO_MAX_SYN_PAYLOAD; k++)
		if (k >= w->meta_len)
			w->sp.bytes[k] = 0;
	bpf_map_update_elem(&dysco_synpayload, &w->session, &w->sp, BPF_ANY);
	__builtin_memset(&w->in, 0, sizeof(w->in));
	reverse_tuple(&w->rsession, &w->session);
	plain_path(&w->in.rewrite, &w->rsession);
	w->in.egress_key = w->session;
	w->in.last_seen = now;
	reverse_tuple(&w->rsub, &w->sub);
	bpf_map_update_elem(&dysco_ingress, &w->rsub, &w->in, BPF_ANY);
	if (pending && pending_key) {
		__u32 tag = pending->nat_tag;
		struct dysco_tuple pk = *pending_key;
		bpf_map_delete_elem(&dysco_pending, &pk);
		struct dysco_tuple *owner = bpf_map_lookup_elem(&dysco_nattag, &tag);
		if (owner && tuple_eq(owner, &pk))
			bpf_map_delete_elem(&dysco_nattag, &tag);
		emit_created(w, role, DYSCO_SIDE_RIGHT, &w->session, &w->sub, adopted ? &pk : 0);
	} else {
		emit_created(w, role, DYSCO_SIDE_RIGHT, &w->session, &w->sub, 0);
	}
	if (w->meta_len < 1 || w->meta_len > DYSCO_MAX_SYN_PAYLOAD)
		return V_ERROR;
	return verdict_of(write_back_w(ctx, kind, p, w, w->meta_len));
}

/* A SYN without an egress entry: a pending entry (by tuple or NAT tag), else a policy, else pass. */
static __always_inline int egress_syn(void *ctx, enum dysco_ctx kind, struct dysco_pkt *p)
{
	struct syn_work *w = syn_work();
	struct dysco_config *cfg = config();
	if (!w || !cfg)
		return V_PASS;
	struct dysco_pending *pending = bpf_map_lookup_elem(&dysco_pending, &p->key);
	struct dysco_tuple pk = p->key;
	int by_tag = 0;
	if (!pending && p->has_nat_tag) {
		__u32 tag = p->nat_tag;
		struct dysco_tuple *k = bpf_map_lookup_elem(&dysco_nattag, &tag);
		if (k) {
			pk = *k;
			pending = bpf_map_lookup_elem(&dysco_pending, &pk);
			by_tag = pending != 0;
		}
	}
	__u32 policy_id = 0;
	struct dysco_policy *pol = 0;
	if (!pending) {
		struct policy_walk pwk = { .key = &p->key, .count = cfg->policy_count };
		bpf_loop(DYSCO_MAX_POLICIES, policy_one, &pwk, 0);
		if (!pwk.found)
			return V_PASS;
		policy_id = pwk.found - 1;
		pol = bpf_map_lookup_elem(&dysco_policy, &policy_id);
		if (!pol)
			return V_PASS;
	}
	if (p->fastopen || p->payload_len > 0) {
		count(C_TFO_NOT_STEERED);
		return V_PASS;
	}
	w->session = p->key;
	if (local_source(cfg, w) < 0) {
		count(C_NO_LOCAL_ADDRESS);
		return V_PASS;
	}
	/* the list L: middleboxes, then the destination (a NAT's new destination is followed) */
	__u32 n = 0;
	if (pending) {
		__u32 len = pending->chain_length;
		if (len < 1 || len > DYSCO_MAX_CHAIN)
			return V_ERROR;
		for (int i = 0; i < DYSCO_MAX_CHAIN; i++) {
			if (i + 1 >= len)
				break;
			w->chain[i & (META_CHAIN_MAX - 1)] = pending->chain[i];
			n++;
		}
	} else {
		for (int i = 0; i < DYSCO_MAX_CHAIN; i++) {
			if (i >= pol->chain_length)
				break;
			w->chain[i & (META_CHAIN_MAX - 1)] = pol->chain[i];
			n++;
		}
	}
	slot_of(&w->chain[n & (META_CHAIN_MAX - 1)], p->key.dst, p->family);
	w->chain_len = n + 1;
	if (pending) {
		int adopted = by_tag && !tuple_eq(&p->key, &pk);
		return steer_syn(ctx, kind, p, w, cfg, DYSCO_ROLE_MIDDLEBOX, pending, &pk, adopted);
	}
	return steer_syn(ctx, kind, p, w, cfg, DYSCO_ROLE_ORIGINATOR, 0, 0, 0);
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

/*
 * The first output of a two-output packet, made of the clone in the nested
 * run: the RST on the old path; the segment's part below the cutoff on the
 * old path, without FIN; or the data packet on its data path.
 */
static __always_inline int first_output(struct __sk_buff *skb, struct dysco_pkt *p, struct dysco_egress *e,
					 struct split_job *job)
{
	if (job->kind == SPLIT_STRADDLE) {
		/* the cutoff lies inside the segment; at its end when only the FIN is past it */
		__u32 cut = job->cut;
		if (cut == 0 || cut > p->payload_len || (cut == p->payload_len && !(p->tcp[13] & TCP_FIN)))
			return -1;
		__u32 at = p->l4 + p->thl;
		__u32 whole, part;
		if (payload_sum(skb, at, p->payload_len, &whole) < 0 || payload_sum(skb, at, cut, &part) < 0)
			return -1;
		p->payload_diff = csum_add16(~whole & 0xffff, part);
		p->tcp[13] &= ~TCP_FIN;
		set_ip_len(p, p->ihl + p->thl + cut);
	}
	finish_on(p, e, job->path1, job->m_valid, job->m);
	return write_back(skb, CTX_TC, p);
}

/*
 * The second output, made of the original: the RST on the new path; the
 * part at and above the cutoff at seq c on the new path (payload moved to
 * the front); or a pure ACK on the ack path at seq sndHigh.
 */
static __always_inline int second_output(struct __sk_buff *skb, struct dysco_pkt *p, struct dysco_egress *e,
					  struct split_job *job, int ack_path)
{
	__u32 at = p->l4 + p->thl;
	if (job->kind == SPLIT_STRADDLE) {
		__u32 cut = job->cut;
		__u32 rest = p->payload_len - cut;
		__u32 whole, moved;
		if (payload_sum(skb, at, p->payload_len, &whole) < 0 || payload_move(skb, at + cut, at, rest) < 0 ||
		    payload_sum(skb, at, rest, &moved) < 0)
			return V_ERROR;
		p->payload_diff = csum_add16(~whole & 0xffff, moved);
		__u32 c = pkt_seq(p) + cut;
		WR32(p->tcp, 4, c);
		set_ip_len(p, p->ihl + p->thl + rest);
		finish_on(p, e, 1, job->m_valid, job->m);
	} else if (job->kind == SPLIT_DATA_ACK) {
		__u32 whole = 0;
		if (p->payload_len && payload_sum(skb, at, p->payload_len, &whole) < 0)
			return V_ERROR;
		p->payload_diff = ~whole & 0xffff;
		p->tcp[13] &= ~(TCP_FIN | TCP_PSH | TCP_URG);
		WR16(p->tcp, 18, 0);
		__u32 snd = e->snd_high;
		WR32(p->tcp, 4, snd);
		set_ip_len(p, p->ihl + p->thl);
		finish_on(p, e, ack_path > 0 ? 1 : 0, job->m_valid, job->m);
	} else {
		finish_on(p, e, 1, job->m_valid, job->m);
	}
	return verdict_of(write_back(skb, CTX_TC, p));
}

static __always_inline int egress_established(void *ctx, enum dysco_ctx kind, struct dysco_pkt *p,
					      struct dysco_egress *e)
{
	__u8 flags = p->flags;
	TOUCH(e, p->ip_len);
	__u32 S = pkt_seq(p);
	__u32 end = S + p->payload_len + ((flags & TCP_SYN) ? 1 : 0) + ((flags & TCP_FIN) ? 1 : 0);
	snd_high_update(e, end, flags & TCP_SYN);
	if (flags & TCP_ACK)
		ack_sent_update(e, pkt_ack(p));
	close_tracking(e, &p->key, flags, 1);

	__u32 ef = *(volatile __u32 *)&e->flags;
	if ((flags & TCP_SYN) || !(ef & EGRESS_TWO_PATH)) {
		if ((flags & (TCP_SYN | TCP_ACK)) == TCP_SYN && (ef & EGRESS_SYN_PAYLOAD) && p->payload_len == 0) {
			/* a retransmitted steered SYN carries the same metadata again */
			struct dysco_syn_payload *sp = bpf_map_lookup_elem(&dysco_synpayload, &p->key);
			struct syn_work *w = syn_work();
			if (sp && w && sp->length >= 1 && sp->length <= DYSCO_MAX_SYN_PAYLOAD) {
				count(C_SYN_RETRANSMITTED);
				__u32 len = sp->length;
				__builtin_memcpy(w->meta, sp->bytes, DYSCO_MAX_SYN_PAYLOAD);
				strip_nat_tag(p);
				p->payload_diff = meta_sum(w, len);
				set_ip_len(p, p->ihl + p->thl + len);
				apply_path(p, &e->old);
				if (len < 1 || len > DYSCO_MAX_SYN_PAYLOAD)
					return V_ERROR;
				return verdict_of(write_back_w(ctx, kind, p, w, len));
			}
		}
		apply_path(p, &e->old);
		return verdict_of(write_back(ctx, kind, p));
	}

	/* rule 2: two paths */
	if (ef & EGRESS_CUTOFF_PENDING) {
		e->seq_cutoff = S;
		__sync_fetch_and_and(&e->flags, ~EGRESS_CUTOFF_PENDING);
	}
	ef = *(volatile __u32 *)&e->flags;
	if ((ef & (EGRESS_PEER_END | EGRESS_RECEIVED)) == EGRESS_PEER_END && (ef & EGRESS_ACK_SENT_HIGH) &&
	    seq_geq(*(volatile __u32 *)&e->ack_sent_high, e->peer_end))
		/* the stack acknowledged the last of what the peer sent on the old path */
		old_path_half(e, &p->key, EGRESS_RECEIVED, EGRESS_DRAINED);
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
		if (kind != CTX_TC) {
			count(C_SPLIT_FAILED);
			return V_DROP;
		}
		struct split_job *job = split_job();
		if (!job)
			return V_ERROR;
		job->kind = (flags & TCP_RST) ? SPLIT_RST : data_path == 2 ? SPLIT_STRADDLE : SPLIT_DATA_ACK;
		job->path1 = job->kind == SPLIT_DATA_ACK ? data_path : 0;
		job->cut = c - S;
		job->m_valid = m_valid;
		job->m = m;
		job->done = 0;
		job->active = 1;
		struct __sk_buff *skb = ctx;
		__u32 mark = skb->mark;
		skb->mark = mark | DYSCO_CLONE_MARK;
		long r = bpf_clone_redirect(skb, skb->ifindex, 0);
		skb->mark = mark;
		job->active = 0;
		if (r < 0 || !job->done) {
			/* the first output did not go out as it should: the second alone would lose it */
			count(C_SPLIT_FAILED);
			return V_DROP;
		}
		if (job->kind != SPLIT_RST)
			count(C_TWO_PATH_SPLIT);
		return second_output(skb, p, e, job, ack_path);
	}
	int path = data_path >= 0 ? data_path : (ack_path > 0 ? 1 : 0);
	finish_on(p, e, path, m_valid, m);
	return verdict_of(write_back(ctx, kind, p));
}

/* The nested run on the clone of a two-output packet. */
static __always_inline int clone_egress(struct __sk_buff *skb)
{
	skb->mark &= ~DYSCO_CLONE_MARK;
	struct split_job *job = split_job();
	struct dysco_pkt *p = scratch(1);
	if (!job || !p || !job->active)
		return V_ERROR;
	if (parse(skb, CTX_TC, p) != PARSE_TCP)
		return V_ERROR;
	struct dysco_egress *e = bpf_map_lookup_elem(&dysco_egress, &p->key);
	if (!e)
		return V_ERROR;
	p->egress = 1;
	int r = first_output(skb, p, e, job);
	if (r < 0)
		return V_ERROR;
	job->done = 1;
	return verdict_of(r);
}

/*
 * What an ingress packet of a known session tells its egress entry: the
 * highest ack on the subsession, and on two paths (when the ingress entry
 * feeds them) the first new-path sequence number, the peer's acks, and the
 * sending half of the old path's completion. Then FIN/RST bookkeeping.
 * `seq` and `ack` are the rewritten values (local space).
 */
static __always_inline void ingress_track(struct dysco_ingress *in, __u32 seq, __u32 ack, __u8 flags, __u32 payload_len)
{
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
	/* the egress entry only when this packet has something to tell it: most have not */
	int feeds = in->feeds_two_path;
	struct dysco_egress *e = 0;
	if (feeds || (flags & (TCP_FIN | TCP_RST)))
		e = bpf_map_lookup_elem(&dysco_egress, &in->egress_key);
	if (e && feeds && (*(volatile __u32 *)&e->flags & EGRESS_TWO_PATH)) {
		if (in->path == 1 && (payload_len > 0 || (flags & TCP_FIN)))
			seq_update(&e->new_path_min_seq, &e->flags, EGRESS_NEW_PATH_MIN_SEQ, seq, 0);
		if (flags & TCP_ACK) {
			seq_update(&e->peer_ack_high, &e->flags, EGRESS_PEER_ACK_HIGH, ack, 1);
			__u32 ef = *(volatile __u32 *)&e->flags;
			if (!(ef & (EGRESS_DRAINED | EGRESS_AWAITING_CUTOVER | EGRESS_CUTOFF_PENDING)) &&
			    seq_geq(e->peer_ack_high, e->seq_cutoff))
				old_path_half(e, &in->egress_key, EGRESS_DRAINED, EGRESS_RECEIVED);
		}
	}
	close_tracking(e, &in->egress_key, flags, 0);
}

/* ---- the fast path ---------------------------------------------------------------- */

/*
 * Most packets belong to an established session whose path changes
 * addresses and ports only (no deltas, no window rescaling, one path) and
 * carry no TCP option but Linux's timestamps (NOP, NOP, TS). They are
 * rewritten here in place, straight in the packet, with the checksum
 * differences of the changed words; the general path (the scratch copy)
 * would produce the same bytes, verdict, table state, events and counters
 * for them, and takes everything this function is not sure of
 * (FAST_GENERAL). The differential test runs both against the reference.
 */
#define FAST_GENERAL (-1)

static __always_inline int plain_rewrite(const struct dysco_path *rw)
{
	return !(rw->seq_delta | rw->ack_delta | rw->tsval_delta | rw->tsecr_delta) && rw->ws_from == rw->ws_to;
}

/*
 * The skb's checksum state, read from the kernel's sk_buff (the BPF view
 * has no field for it): what a checksum helper would look at before
 * deciding what to update.
 */
extern void *bpf_cast_to_kern_ctx(void *) __ksym;
struct sk_buff___dysco {
	__u8 ip_summed : 2;
} __attribute__((preserve_access_index));
#define DYSCO_CHECKSUM_COMPLETE 2
#define DYSCO_CHECKSUM_PARTIAL 3

/* A 32-bit word of the packet or of a tuple, as stored (network order). */
#define LD32(ptr) (*(const __u32 *)(ptr))
#define ST32(ptr, v) (*(__u32 *)(ptr) = (v))

/*
 * The packet's tuple into p->key and its lengths, family and flags into p,
 * or -1 when it is not in the fast path's subset.
 */
static __always_inline int fast_parse(void *ctx, enum dysco_ctx kind, struct dysco_pkt *p)
{
	void *data, *end;
	CTX_BOUNDS(ctx, kind, data, end);
	__u8 *eth = data;
	if ((void *)(eth + ETH_HLEN + 40) > end)
		return -1;
	__u8 *ip = eth + ETH_HLEN;
	__u8 *tcp;
	struct dysco_tuple *key = &p->key;
	__builtin_memset(key, 0, sizeof(*key));
	__u16 proto = *(__u16 *)(eth + 12);
	if (proto == bpf_htons(ETH_P_IP)) {
		/* no IP options, not a fragment */
		if (ip[0] != 0x45 || ip[9] != 6 || (*(__u16 *)(ip + 6) & bpf_htons(0x3fff)))
			return -1;
		p->ip_len = bpf_ntohs(*(__u16 *)(ip + 2));
		p->ihl = 20;
		p->family = 4;
		ST32(key->src, LD32(ip + 12));
		ST32(key->dst, LD32(ip + 16));
		tcp = ip + 20;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		if ((ip[0] >> 4) != 6 || ip[6] != 6)
			return -1;
		p->ip_len = 40 + bpf_ntohs(*(__u16 *)(ip + 4));
		p->ihl = 40;
		p->family = 6;
		for (int i = 0; i < 16; i += 4) {
			ST32(key->src + i, LD32(ip + 8 + i));
			ST32(key->dst + i, LD32(ip + 24 + i));
		}
		tcp = ip + 40;
	} else {
		return -1;
	}
	/* the frame ends with the datagram (no link padding to trim) */
	if (ctx_len(ctx, kind) != ETH_HLEN + p->ip_len)
		return -1;
	if ((void *)(tcp + 20) > end)
		return -1;
	__u32 thl = (tcp[12] >> 4) * 4;
	if (thl == 32) {
		if ((void *)(tcp + 32) > end)
			return -1;
		/* NOP, NOP, timestamps (Linux); or timestamps, then EOL or NOP, NOP */
		__u32 head = LD32(tcp + 20);
		if (head != bpf_htonl(0x0101080a)) {
			if ((head & bpf_htonl(0xffff0000)) != bpf_htonl(0x080a0000))
				return -1;
			__u8 a = tcp[30], b = tcp[31];
			if (!(a == 0 || (a == 1 && b <= 1)))
				return -1;
		}
	} else if (thl != 20) {
		return -1;
	}
	if (p->ihl + thl > p->ip_len)
		return -1;
	p->flags = tcp[13];
	if (p->flags & TCP_SYN)
		return -1;
	p->thl = thl;
	p->payload_len = p->ip_len - p->ihl - thl;
	ST32(&key->sport, LD32(tcp));
	key->family = p->family;
	return 0;
}

/* The checksum differences of the two 16-bit words of a 32-bit word changing from `o` to `n` (as stored). */
static __always_inline __u32 diff32(__u32 o, __u32 n)
{
	__u32 s = 0;
	__u32 o0 = bpf_ntohs((__u16)o), n0 = bpf_ntohs((__u16)n);
	__u32 o1 = bpf_ntohs((__u16)(o >> 16)), n1 = bpf_ntohs((__u16)(n >> 16));
	if (o0 != n0)
		s += csum_word_diff(o0, n0);
	if (o1 != n1)
		s += csum_word_diff(o1, n1);
	return s;
}

/* Writes the path's addresses and ports into the packet and updates its checksums, as write_back would. */
static __always_inline int fast_write(void *ctx, enum dysco_ctx kind, const struct dysco_path *rw, struct dysco_pkt *p,
				      int egress)
{
	void *data, *end;
	CTX_BOUNDS(ctx, kind, data, end);
	__u8 *ip = (__u8 *)data + ETH_HLEN;
	int v4 = p->family == 4;
	__u8 *tcp = v4 ? ip + 20 : ip + 40;
	if ((void *)(ip + 40) > end || (void *)(tcp + 20) > end)
		return -1;
	__u32 addr = 0;
	int dst_changed = 0;
	if (v4) {
		__u32 os = LD32(ip + 12), od = LD32(ip + 16), ns = LD32(rw->tuple.src), nd = LD32(rw->tuple.dst);
		addr = diff32(os, ns) + diff32(od, nd);
		dst_changed = od != nd;
		ST32(ip + 12, ns);
		ST32(ip + 16, nd);
	} else {
		for (int i = 0; i < 16; i += 4) {
			__u32 os = LD32(ip + 8 + i), od = LD32(ip + 24 + i), ns = LD32(rw->tuple.src + i), nd = LD32(rw->tuple.dst + i);
			addr += diff32(os, ns) + diff32(od, nd);
			dst_changed |= od != nd;
			ST32(ip + 8 + i, ns);
			ST32(ip + 24 + i, nd);
		}
	}
	__u32 op = LD32(tcp), np = LD32(&rw->tuple.sport);
	__u32 tcp_diff = csum_fold32(diff32(op, np));
	ST32(tcp, np);
	__u32 pseudo_diff = csum_fold32(addr);
	__u32 ip_diff = v4 ? pseudo_diff : 0;
	/* the IP header checksum covers nothing else, whatever the skb's checksum state */
	if (ip_diff)
		*(__u16 *)(ip + 10) = bpf_htons(csum_apply(bpf_ntohs(*(__u16 *)(ip + 10)), ip_diff));
	if (kind == CTX_XDP) {
		if (tcp_diff || pseudo_diff)
			*(__u16 *)(tcp + 16) = bpf_htons(csum_apply(bpf_ntohs(*(__u16 *)(tcp + 16)), csum_add16(tcp_diff, pseudo_diff)));
		return 0;
	}
	struct sk_buff___dysco *kskb = bpf_cast_to_kern_ctx(ctx);
	__u32 summed = BPF_CORE_READ_BITFIELD(kskb, ip_summed);
	if (summed == DYSCO_CHECKSUM_PARTIAL) {
		/*
		 * The field holds the pseudo-header's sum, uncomplemented, and the
		 * device sums the segment (ports included) itself: only the
		 * pseudo-header's change goes in, as bpf_l4_csum_replace does it.
		 */
		if (pseudo_diff)
			*(__u16 *)(tcp + 16) = bpf_htons(csum_fold32(bpf_ntohs(*(__u16 *)(tcp + 16)) + pseudo_diff));
		goto routed;
	}
	if (summed != DYSCO_CHECKSUM_COMPLETE) {
		/* NONE or UNNECESSARY: the field is the segment's checksum, as in XDP */
		if (tcp_diff || pseudo_diff)
			*(__u16 *)(tcp + 16) = bpf_htons(csum_apply(bpf_ntohs(*(__u16 *)(tcp + 16)), csum_add16(tcp_diff, pseudo_diff)));
		goto routed;
	}
	/* COMPLETE: skb->csum must follow the pseudo-header's change too; the helpers know how */
	__u32 l4 = ETH_HLEN + (v4 ? 20 : 40);
	if (tcp_diff && bpf_l4_csum_replace(ctx, l4 + 16, 0, csum_swab(tcp_diff), 0) < 0)
		return -1;
	if (pseudo_diff && bpf_l4_csum_replace(ctx, l4 + 16, 0, csum_swab(pseudo_diff), BPF_F_PSEUDO_HDR) < 0)
		return -1;
	if (!v4 && pseudo_diff)
		bpf_csum_update(ctx, csum_swab(pseudo_diff));
routed:
	if (egress && dst_changed && route_on())
		return route_tuple(ctx, &rw->tuple);
	return 0;
}

/* The sequence and ack numbers of the packet fast_parse accepted. */
static __always_inline int fast_seq_ack(void *ctx, enum dysco_ctx kind, struct dysco_pkt *p, __u32 *seq, __u32 *ack)
{
	void *data, *end;
	CTX_BOUNDS(ctx, kind, data, end);
	__u8 *tcp = (__u8 *)data + ETH_HLEN + (p->family == 4 ? 20 : 40);
	if ((void *)(tcp + 20) > end)
		return -1;
	*seq = bpf_ntohl(LD32(tcp + 4));
	*ack = bpf_ntohl(LD32(tcp + 8));
	return 0;
}

/*
 * Egress: a verdict, or FAST_GENERAL. Inlined into the entry programs: a
 * call costs a return, and with this machine's return-stack mitigations a
 * return costs several ns.
 */
static __always_inline int fast_egress(void *ctx, enum dysco_ctx kind)
{
	struct dysco_pkt *p = scratch(0);
	if (!p || fast_parse(ctx, kind, p) < 0)
		return FAST_GENERAL;
	struct dysco_egress *e = bpf_map_lookup_elem(&dysco_egress, &p->key);
	if (!e) {
		count(C_UNKNOWN_SESSION);
		return V_PASS;
	}
	if ((*(volatile __u32 *)&e->flags & EGRESS_TWO_PATH) || !plain_rewrite(&e->old))
		return FAST_GENERAL;
	__u32 seq, ack;
	if (fast_seq_ack(ctx, kind, p, &seq, &ack) < 0)
		return FAST_GENERAL;
	__u8 flags = p->flags;
	TOUCH(e, p->ip_len);
	snd_high_update(e, seq + p->payload_len + ((flags & TCP_FIN) ? 1 : 0), 0);
	if (flags & TCP_ACK)
		ack_sent_update(e, ack);
	close_tracking(e, &p->key, flags, 1);
	int r = fast_write(ctx, kind, &e->old, p, 1);
	return r < 0 ? V_ERROR : r == 1 ? V_FAST_REDIRECT : V_FAST;
}

/* Ingress: a verdict, or FAST_GENERAL. */
static __always_inline int fast_ingress(void *ctx, enum dysco_ctx kind)
{
	struct dysco_pkt *p = scratch(0);
	if (!p || fast_parse(ctx, kind, p) < 0)
		return FAST_GENERAL;
	struct dysco_ingress *in = bpf_map_lookup_elem(&dysco_ingress, &p->key);
	if (!in) {
		/* no session (never a SYN here): what do_ingress decides, without parsing again */
		struct dysco_config *cfg = config();
		if (cfg) {
			struct dysco_slot dst;
			slot_of(&dst, p->key.dst, p->family);
			__u16 port = bpf_ntohs(p->key.dport);
			if (is_local(cfg, &dst) && p->key.sport == p->key.dport && port >= cfg->port_low && port <= cfg->port_high) {
				count(C_STALE_SUBSESSION);
				return V_DROP;
			}
		}
		count(C_UNKNOWN_SESSION);
		return V_PASS;
	}
	if (!plain_rewrite(&in->rewrite))
		return FAST_GENERAL;
	__u32 seq, ack;
	if (fast_seq_ack(ctx, kind, p, &seq, &ack) < 0)
		return FAST_GENERAL;
	TOUCH(in, p->ip_len);
	ingress_track(in, seq, ack, p->flags, p->payload_len);
	return fast_write(ctx, kind, &in->rewrite, p, 0) < 0 ? V_ERROR : V_FAST;
}

static __always_inline int do_egress(void *ctx, enum dysco_ctx kind)
{
	if (kind == CTX_TC && !(((struct __sk_buff *)ctx)->mark & DYSCO_CLONE_MARK)) {
		int v = fast_egress(ctx, CTX_TC);
		if (v != FAST_GENERAL)
			return v;
	}
	if (kind == CTX_TC && (((struct __sk_buff *)ctx)->mark & DYSCO_CLONE_MARK))
		return clone_egress(ctx);
	struct dysco_pkt *p = scratch(0);
	if (!p)
		return V_PASS;

	int r = parse(ctx, kind, p);
	p->egress = kind == CTX_TC;
	if (r == PARSE_PASS)
		return V_PASS;
	if (r == PARSE_MALFORMED) {
		count(C_MALFORMED_PACKET);
		return V_DROP;
	}
	struct dysco_egress *e = bpf_map_lookup_elem(&dysco_egress, &p->key);
	if (e && (p->flags & (TCP_SYN | TCP_ACK)) == TCP_SYN && (*(volatile __u32 *)&e->flags & EGRESS_ENDED)) {
		remove_ended(&p->key, e);
		e = 0;
	}
	if (e)
		return egress_established(ctx, kind, p, e);
	int v = (p->flags & (TCP_SYN | TCP_ACK)) == TCP_SYN ? egress_syn(ctx, kind, p) : V_PASS;
	if (v == V_PASS)
		count(C_UNKNOWN_SESSION);
	return v;
}

/* ---- ingress ----------------------------------------------------------------- */

static __always_inline int ingress_established(void *ctx, enum dysco_ctx kind, struct dysco_pkt *p,
					       struct dysco_ingress *in)
{
	TOUCH(in, p->ip_len);
	apply_path(p, &in->rewrite);
	ingress_track(in, pkt_seq(p), pkt_ack(p), p->flags, p->payload_len);
	return verdict_of(write_back(ctx, kind, p));
}

static __always_inline int meta_drop(int r)
{
	count(r == META_CHAIN_TOO_LONG ? C_CHAIN_TOO_LONG : r == META_AUTH_FAILED ? C_AUTH_FAILED : C_MALFORMED_METADATA);
	return V_DROP;
}

/* A fresh NAT tag: non-zero, not in use by a pending entry. */
static __always_inline __u32 fresh_nat_tag(struct dysco_config *cfg)
{
	for (int i = 0; i < 16; i++) {
		__u32 tag = prng_next(&cfg->tag_state);
		if (tag != 0 && !bpf_map_lookup_elem(&dysco_nattag, &tag))
			return tag;
	}
	return 0;
}

/*
 * Rule 3, receiving side: a Dysco SYN to a local address on a new
 * subsession. Strip the metadata, rewrite to the session, install both
 * entries; at a middlebox also the pending entry and its NAT tag.
 */
static __always_inline int ingress_syn(void *ctx, enum dysco_ctx kind, struct dysco_pkt *p, struct syn_work *w,
				       struct dysco_config *cfg)
{
	int r = meta_decode(w, cfg, p->family);
	if (r != META_OK)
		return meta_drop(r);
	reverse_tuple(&w->rsession, &w->session);
	struct dysco_egress *prior = bpf_map_lookup_elem(&dysco_egress, &w->rsession);
	if (prior) {
		if (!(*(volatile __u32 *)&prior->flags & EGRESS_ENDED)) {
			count(C_ENTRY_CONFLICT);
			return V_DROP;
		}
		remove_ended(&w->rsession, prior);
	}
	/*
	 * A pending entry whose session has no egress entry any more outlived
	 * it (a terminating proxy opens its own connection and never consumes
	 * it): the tuple is free for a new session, whose client may well have
	 * picked the same port again.
	 */
	struct dysco_pending *stale = bpf_map_lookup_elem(&dysco_pending, &w->session);
	if (stale) {
		__u32 stale_tag = stale->nat_tag;
		bpf_map_delete_elem(&dysco_pending, &w->session);
		struct dysco_tuple *owner = bpf_map_lookup_elem(&dysco_nattag, &stale_tag);
		if (owner && tuple_eq(owner, &w->session))
			bpf_map_delete_elem(&dysco_nattag, &stale_tag);
	}
	int middlebox = w->chain_len > 0;
	__u32 tag = 0;
	if (middlebox) {
		tag = fresh_nat_tag(cfg);
		if (!tag)
			return V_ERROR;
	}
	__u64 now = now_ns();
	/* the packet: metadata out, onto the session tuple */
	p->payload_diff = ~meta_sum(w, w->meta_len) & 0xffff;
	set_ip_len(p, p->ihl + p->thl);
	__builtin_memset(&w->in, 0, sizeof(w->in));
	plain_path(&w->in.rewrite, &w->session);
	apply_path(p, &w->in.rewrite);
	/* entries */
	w->in.egress_key = w->rsession;
	w->in.packets = 1;
	w->in.bytes = p->ip_len;
	w->in.last_seen = now;
	bpf_map_update_elem(&dysco_ingress, &p->key, &w->in, BPF_ANY);
	__builtin_memset(&w->eg, 0, sizeof(w->eg));
	reverse_tuple(&w->rsub, &p->key);
	plain_path(&w->eg.old, &w->rsub);
	w->eg.last_seen = now;
	bpf_map_update_elem(&dysco_egress, &w->rsession, &w->eg, BPF_ANY);
	if (middlebox) {
		__builtin_memset(&w->pend, 0, sizeof(w->pend));
		w->pend.from_subsession = p->key;
		w->pend.nat_tag = tag;
		w->pend.chain_length = w->chain_len;
		w->pend.created = now;
		for (int i = 0; i < DYSCO_MAX_CHAIN; i++) {
			if (i >= w->chain_len)
				break;
			w->pend.chain[i] = w->chain[i];
		}
		bpf_map_update_elem(&dysco_pending, &w->session, &w->pend, BPF_ANY);
		bpf_map_update_elem(&dysco_nattag, &tag, &w->session, BPF_ANY);
		add_nat_tag(p, tag);
	}
	set_ip_len(p, p->ihl + p->thl); /* the header may have grown by the tag */
	emit_created(w, middlebox ? DYSCO_ROLE_MIDDLEBOX : DYSCO_ROLE_LAST_HOP, DYSCO_SIDE_LEFT, &w->session, &p->key, 0);
	return verdict_of(write_back(ctx, kind, p));
}

/* A retransmitted Dysco SYN on a subsession already known. */
static __always_inline int ingress_syn_again(void *ctx, enum dysco_ctx kind, struct dysco_pkt *p, struct syn_work *w,
					     struct dysco_ingress *in)
{
	struct dysco_config *cfg = config();
	if (!cfg)
		return V_ERROR;
	int r = meta_decode(w, cfg, p->family);
	if (r != META_OK)
		return meta_drop(r);
	if (!tuple_eq(&w->session, &in->rewrite.tuple)) {
		count(C_ENTRY_CONFLICT);
		return V_DROP;
	}
	count(C_SYN_RETRANSMITTED);
	TOUCH(in, p->ip_len);
	p->payload_diff = ~meta_sum(w, w->meta_len) & 0xffff;
	set_ip_len(p, p->ihl + p->thl);
	apply_path(p, &in->rewrite);
	struct dysco_pending *pending = bpf_map_lookup_elem(&dysco_pending, &w->session);
	if (pending)
		add_nat_tag(p, pending->nat_tag);
	set_ip_len(p, p->ihl + p->thl);
	return verdict_of(write_back(ctx, kind, p));
}

static __always_inline int do_ingress(void *ctx, enum dysco_ctx kind)
{
	int v = fast_ingress(ctx, kind);
	if (v != FAST_GENERAL)
		return v;
	struct dysco_pkt *p = scratch(0);
	if (!p)
		return V_PASS;

	int r = parse(ctx, kind, p);
	if (r == PARSE_PASS)
		return V_PASS;
	if (r == PARSE_MALFORMED) {
		count(C_MALFORMED_PACKET);
		return V_DROP;
	}
	struct dysco_ingress *in = bpf_map_lookup_elem(&dysco_ingress, &p->key);
	struct syn_work *w = 0;
	if ((p->flags & (TCP_SYN | TCP_ACK)) == TCP_SYN && p->payload_len > 0) {
		w = syn_work();
		if (w && (load_payload(ctx, kind, p, w) < 0 || !meta_candidate(w)))
			w = 0; /* not Dysco metadata (Fast Open, say): a normal SYN */
	}
	if (in) {
		if (w)
			return ingress_syn_again(ctx, kind, p, w, in);
		return ingress_established(ctx, kind, p, in);
	}
	struct dysco_config *cfg = config();
	if (cfg) {
		struct dysco_slot dst;
		slot_of(&dst, p->key.dst, p->family);
		int local = is_local(cfg, &dst);
		if (w && local)
			return ingress_syn(ctx, kind, p, w, cfg);
		/*
		 * A subsession this agent no longer has (a straggler after a
		 * reconfiguration removed it): the stack would answer it with a
		 * reset that the neighbour may still map into the session.
		 */
		__u16 port = bpf_ntohs(p->key.dport);
		if (local && p->key.sport == p->key.dport && port >= cfg->port_low && port <= cfg->port_high) {
			count(C_STALE_SUBSESSION);
			return V_DROP;
		}
	}
	count(C_UNKNOWN_SESSION);
	return V_PASS;
}

/* ---- entry points ---------------------------------------------------------------- */

static __always_inline int tc_verdict(int v)
{
	switch (v) {
	case V_REWRITE:
		count(C_REWRITTEN);
		return TC_ACT_OK;
	case V_REDIRECT:
		count(C_REWRITTEN);
		return TC_ACT_REDIRECT;
	case V_FAST:
		count(C_FAST_PATH);
		return TC_ACT_OK;
	case V_FAST_REDIRECT:
		count(C_FAST_PATH);
		return TC_ACT_REDIRECT;
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
	case V_FAST:
		count(C_FAST_PATH);
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

/*
 * Calibrates now_ns: the agent runs it (a test run) when it opens the data
 * plane and before each idle scan, so that NTP's slewing of the monotonic
 * clock never adds up. The tick is the kernel's own (TICK_NSEC); without
 * the kernel's configuration (CONFIG_HZ unknown) the programs keep the
 * coarse clock. Returns 1 when calibrated.
 */
extern unsigned long CONFIG_HZ __kconfig __weak;

SEC("tc")
int dysco_clock(struct __sk_buff *skb)
{
	struct dysco_config *cfg = config();
	unsigned long hz = CONFIG_HZ;
	if (!cfg || hz < 24 || hz > 10000)
		return 0;
	__u32 tick = (1000000000ul + hz / 2) / hz;
	__u64 jiffies = bpf_jiffies64();
	__u64 ns = bpf_ktime_get_coarse_ns();
	/* the offset first: a packet that sees the tick sees an offset that goes with it */
	*(volatile __u64 *)&cfg->clock_offset = ns - jiffies * tick;
	*(volatile __u32 *)&cfg->clock_tick_ns = tick;
	return 1;
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
