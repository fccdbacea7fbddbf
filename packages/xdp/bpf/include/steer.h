/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SYNs in the kernel (docs/session-table.md section 4.4): policy match and
 * metadata insertion where a session starts, metadata decoding, pending
 * entries and the NAT tag at middleboxes, stripping at the last hop, port
 * allocation, retransmitted SYNs. Included by dysco.bpf.c after its helpers.
 *
 * SYN metadata is handled unauthenticated here: a signed payload is parsed
 * and its tag is not checked, as the reference does without keys.
 */
#ifndef DYSCO_STEER_H
#define DYSCO_STEER_H

#define DYSCO_MAX_POLICIES 1024
#include "hmac.h"

#define META_MAX 512
#define META_CHAIN_MAX 16

/* The agent's keys: HMAC-SHA256 states after the ipad and opad blocks (src/hmac-key.ts). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct hmac_key);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dysco_keys SEC(".maps");

/* Policy ids in id order (the first match wins). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DYSCO_MAX_POLICIES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dysco_policy_order SEC(".maps");

/* Everything a SYN needs besides the header copy. */
struct syn_work {
	__u8 meta[META_MAX + 8];
	__u32 meta_len;
	__u32 chain_len; /* chain entries decoded, or of the list L */
	struct dysco_slot chain[META_CHAIN_MAX];
	struct dysco_tuple session;
	struct dysco_tuple sub;
	struct dysco_tuple rsub;
	struct dysco_tuple rsession;
	struct dysco_slot src; /* local source of a new subsession */
	struct dysco_egress eg;
	struct dysco_ingress in;
	struct dysco_pending pend;
	struct dysco_syn_payload sp;
	struct dysco_event ev;
	struct hmac_work hw;
	struct hmac_tag tag;
	/* decoder cursor: kept in the map value, so the verifier need not follow its values */
	__u32 cursor;
	__u32 end;
	__u32 count;
	__u32 err;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct syn_work);
} dysco_syn_work SEC(".maps");

static __always_inline struct syn_work *syn_work(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&dysco_syn_work, &zero);
}


/* mulberry32, as the reference's Prng; the state advances atomically. */
static __always_inline __u32 prng_next(__u32 *state)
{
	__u32 t = __sync_fetch_and_add(state, 0x6d2b79f5) + 0x6d2b79f5;
	t = (t ^ (t >> 15)) * (t | 1);
	t ^= t + (t ^ (t >> 7)) * (t | 61);
	return t ^ (t >> 14);
}

static __always_inline int slot_eq(const struct dysco_slot *a, const struct dysco_slot *b)
{
	if (a->family != b->family)
		return 0;
	for (int i = 0; i < 16; i++)
		if (a->addr[i] != b->addr[i])
			return 0;
	return 1;
}

static __always_inline void slot_of(struct dysco_slot *s, const __u8 *addr, __u8 family)
{
	__builtin_memset(s, 0, sizeof(*s));
	__builtin_memcpy(s->addr, addr, 16);
	s->family = family;
}

static __always_inline int is_local(struct dysco_config *cfg, const struct dysco_slot *a)
{
	for (int i = 0; i < DYSCO_MAX_LOCALS; i++) {
		if (i >= cfg->local_count)
			break;
		if (slot_eq(&cfg->locals[i], a))
			return 1;
	}
	return 0;
}

/* The session source if local, else the first local address of its family. */
static __always_inline int local_source(struct dysco_config *cfg, struct syn_work *w)
{
	struct dysco_slot s;
	slot_of(&s, w->session.src, w->session.family);
	if (is_local(cfg, &s)) {
		w->src = s;
		return 0;
	}
	for (int i = 0; i < DYSCO_MAX_LOCALS; i++) {
		if (i >= cfg->local_count)
			break;
		if (cfg->locals[i].family == w->session.family) {
			w->src = cfg->locals[i];
			return 0;
		}
	}
	return -1;
}

static __always_inline int prefix_match(const struct dysco_slot *p, __u32 len, const __u8 *addr, __u8 family)
{
	if (p->family != family)
		return 0;
	for (int i = 0; i < 16; i++) {
		__u32 bits = i * 8;
		if (bits >= len)
			break;
		__u8 mask = len - bits >= 8 ? 0xff : (__u8)(0xff << (8 - (len - bits)));
		if ((p->addr[i] ^ addr[i]) & mask)
			return 0;
	}
	return 1;
}

static __always_inline int policy_matches(const struct dysco_policy *pol, const struct dysco_tuple *t)
{
	if ((pol->flags & POLICY_SRC) && !prefix_match(&pol->src, pol->src_length, t->src, t->family))
		return 0;
	if ((pol->flags & POLICY_DST) && !prefix_match(&pol->dst, pol->dst_length, t->dst, t->family))
		return 0;
	__u16 sport = bpf_ntohs(t->sport), dport = bpf_ntohs(t->dport);
	if ((pol->flags & POLICY_SPORT) && (sport < pol->sport_low || sport > pol->sport_high))
		return 0;
	if ((pol->flags & POLICY_DPORT) && (dport < pol->dport_low || dport > pol->dport_high))
		return 0;
	for (int i = 0; i < DYSCO_MAX_CHAIN; i++) {
		if (i >= pol->chain_length)
			break;
		if (pol->chain[i].family != t->family)
			return 0;
	}
	return 1;
}

struct policy_walk {
	struct dysco_tuple *key;
	__u32 count;
	__u32 found; /* policy id + 1 */
};

static long policy_one(__u32 i, void *arg)
{
	struct policy_walk *w = arg;
	if (i >= w->count)
		return 1;
	__u32 *id = bpf_map_lookup_elem(&dysco_policy_order, &i);
	if (!id)
		return 1;
	struct dysco_policy *pol = bpf_map_lookup_elem(&dysco_policy, id);
	if (pol && policy_matches(pol, w->key)) {
		w->found = *id + 1;
		return 1;
	}
	return 0;
}

/* ---- metadata --------------------------------------------------------------- */

/* Appends a tagged address (family byte, 4 or 16 bytes) at *at. */
static __always_inline void meta_put_addr(struct syn_work *w, __u32 *at, const __u8 *addr, __u8 family)
{
	__u32 i = *at;
	w->meta[i & (META_MAX - 1)] = family;
	__u32 n = family == 4 ? 4 : 16;
	for (__u32 k = 0; k < 16; k++) {
		if (k >= n)
			break;
		w->meta[(i + 1 + k) & (META_MAX - 1)] = addr[k];
	}
	*at = i + 1 + n;
}

/* Unsigned metadata for the session and chain entries [1, chain_len) of w->chain. */
__attribute__((noinline)) int meta_encode(struct syn_work *w, struct dysco_config *cfg)
{
	if (!w || !cfg)
		return -1;
	struct hmac_key *key = 0;
	if (cfg->flags & CONFIG_SIGN) {
		__u32 id = cfg->send_key_id;
		key = bpf_map_lookup_elem(&dysco_keys, &id);
		if (!key)
			return -1;
	}
	__u32 at = 8;
	__u32 alen = w->session.family == 4 ? 4 : 16;
	w->meta[0] = 0xc4;
	w->meta[1] = 0x59;
	w->meta[2] = 0x53;
	w->meta[3] = 0x43;
	w->meta[4] = 1;
	w->meta[5] = 0;
	w->meta[at] = w->session.family;
	at++;
	for (__u32 k = 0; k < 16; k++) {
		if (k >= alen)
			break;
		w->meta[(at + k) & (META_MAX - 1)] = w->session.src[k];
		w->meta[(at + alen + k) & (META_MAX - 1)] = w->session.dst[k];
	}
	at += 2 * alen;
	w->meta[at & (META_MAX - 1)] = ((__u8 *)&w->session.sport)[0];
	w->meta[(at + 1) & (META_MAX - 1)] = ((__u8 *)&w->session.sport)[1];
	w->meta[(at + 2) & (META_MAX - 1)] = ((__u8 *)&w->session.dport)[0];
	w->meta[(at + 3) & (META_MAX - 1)] = ((__u8 *)&w->session.dport)[1];
	at += 4;
	__u32 n = w->chain_len > 0 ? w->chain_len - 1 : 0;
	w->meta[at & (META_MAX - 1)] = n;
	/* the cursor lives in the map value: the verifier need not follow every family combination */
	w->cursor = at + 1;
	for (int i = 1; i < DYSCO_MAX_CHAIN + 1; i++) {
		if (i >= w->chain_len)
			break;
		__u32 c = w->cursor;
		if (c > META_MAX - 17)
			return -1;
		meta_put_addr(w, &c, w->chain[i & (META_CHAIN_MAX - 1)].addr, w->chain[i & (META_CHAIN_MAX - 1)].family);
		w->cursor = c;
	}
	at = w->cursor;
	if (at > META_MAX)
		return -1;
	if (key) {
		/* signed: flag, total length with key id and tag, then the tag over all before it */
		__u32 id = cfg->send_key_id;
		__u32 total = at + 4 + HMAC_TAG_LEN;
		w->meta[5] = 1;
		w->meta[6] = total >> 8;
		w->meta[7] = total;
		if (at > META_MAX - 4 - HMAC_TAG_LEN)
			return -1;
		WR32(w->meta, at, id);
		if (hmac_sha256_tag(&w->hw, key, (const struct hmac_msg *)w->meta, at + 4, &w->tag) != HMAC_OK)
			return -1;
		__builtin_memcpy(&w->meta[at + 4], w->tag.b, HMAC_TAG_LEN);
		w->meta_len = total;
		return 0;
	}
	w->meta[6] = at >> 8;
	w->meta[7] = at;
	w->meta_len = at;
	return 0;
}

static long meta_entry(__u32 i, void *arg)
{
	struct syn_work *w = *(struct syn_work **)arg;
	if (!w || i >= w->count)
		return 1;
	__u32 at = w->cursor;
	__u32 end = w->end;
	if (at >= end || at >= META_MAX) {
		w->err = 1;
		return 1;
	}
	__u8 fam = w->meta[at & (META_MAX - 1)];
	__u32 alen = fam == 4 ? 4 : fam == 6 ? 16 : 0;
	if (!alen || at + 1 + alen > end) {
		w->err = 1;
		return 1;
	}
	struct dysco_slot *s = &w->chain[i & (META_CHAIN_MAX - 1)];
	__builtin_memset(s, 0, sizeof(*s));
	s->family = fam;
	for (__u32 k = 0; k < 16; k++) {
		if (k >= alen)
			break;
		s->addr[k] = w->meta[(at + 1 + k) & (META_MAX - 1)];
	}
	w->cursor = at + 1 + alen;
	return 0;
}

enum meta_result { META_OK = 0, META_MALFORMED = 1, META_CHAIN_TOO_LONG = 2, META_AUTH_FAILED = 3 };

/*
 * Decodes w->meta (w->meta_len bytes) strictly, into w->session and
 * w->chain, then checks it against the packet's family.
 */
__attribute__((noinline)) int meta_decode(struct syn_work *w, struct dysco_config *cfg, __u32 family)
{
	if (!w || !cfg)
		return META_MALFORMED;
	__u32 n = w->meta_len;
	if (n < 8 || n > META_MAX)
		return META_MALFORMED;
	if (w->meta[0] != 0xc4 || w->meta[1] != 0x59 || w->meta[2] != 0x53 || w->meta[3] != 0x43 || w->meta[4] != 1)
		return META_MALFORMED;
	__u8 flags = w->meta[5];
	if (flags & ~1u)
		return META_MALFORMED;
	if ((((__u32)w->meta[6] << 8) | w->meta[7]) != n)
		return META_MALFORMED;
	__u32 end = n;
	if (flags & 1) {
		if (n < 8 + 20)
			return META_MALFORMED;
		end = n - 20;
		if (cfg->flags & CONFIG_KEYS) {
			/* verified before the body is read, as the reference does */
			if (end > META_MAX - 4 - HMAC_TAG_LEN)
				return META_MALFORMED;
			__u32 id = RD32(w->meta, end);
			struct hmac_key *key = bpf_map_lookup_elem(&dysco_keys, &id);
			if (!key)
				return META_AUTH_FAILED;
			__builtin_memcpy(w->tag.b, &w->meta[end + 4], HMAC_TAG_LEN);
			if (hmac_sha256_verify(&w->hw, key, (const struct hmac_msg *)w->meta, end + 4, &w->tag) != HMAC_OK)
				return META_AUTH_FAILED;
		}
	} else if (cfg->flags & CONFIG_REQUIRE_AUTH) {
		return META_AUTH_FAILED;
	}
	__u32 at = 8;
	if (at >= end)
		return META_MALFORMED;
	__u8 sf = w->meta[at];
	__u32 alen = sf == 4 ? 4 : sf == 6 ? 16 : 0;
	if (!alen || at + 1 + 2 * alen + 4 > end)
		return META_MALFORMED;
	__builtin_memset(&w->session, 0, sizeof(w->session));
	w->session.family = sf;
	at++;
	for (__u32 k = 0; k < 16; k++) {
		if (k >= alen)
			break;
		w->session.src[k] = w->meta[(at + k) & (META_MAX - 1)];
		w->session.dst[k] = w->meta[(at + alen + k) & (META_MAX - 1)];
	}
	at += 2 * alen;
	((__u8 *)&w->session.sport)[0] = w->meta[at & (META_MAX - 1)];
	((__u8 *)&w->session.sport)[1] = w->meta[(at + 1) & (META_MAX - 1)];
	((__u8 *)&w->session.dport)[0] = w->meta[(at + 2) & (META_MAX - 1)];
	((__u8 *)&w->session.dport)[1] = w->meta[(at + 3) & (META_MAX - 1)];
	at += 4;
	if (at >= end)
		return META_MALFORMED;
	__u32 count = w->meta[at & (META_MAX - 1)];
	at++;
	if (count > META_CHAIN_MAX)
		return META_MALFORMED;
	w->cursor = at;
	w->end = end;
	w->count = count;
	w->err = 0;
	struct syn_work *wp = w;
	bpf_loop(META_CHAIN_MAX, meta_entry, &wp, 0);
	if (w->err || w->cursor != end)
		return META_MALFORMED;
	w->chain_len = count;
	/* the reference's checks after decoding */
	if (count > DYSCO_MAX_CHAIN)
		return META_CHAIN_TOO_LONG;
	if (sf != family)
		return META_MALFORMED;
	for (int i = 0; i < META_CHAIN_MAX; i++) {
		if (i >= count)
			break;
		if (w->chain[i].family != family)
			return META_MALFORMED;
	}
	if (count > 0) {
		struct dysco_slot d;
		slot_of(&d, w->session.dst, family);
		if (!slot_eq(&w->chain[(count - 1) & (META_CHAIN_MAX - 1)], &d))
			return META_MALFORMED;
	}
	return META_OK;
}

/* Candidate check of the reference (magic, version, length) on a loaded payload. */
static __always_inline int meta_candidate(struct syn_work *w)
{
	__u32 n = w->meta_len;
	return n >= 8 && n <= META_MAX && w->meta[0] == 0xc4 && w->meta[1] == 0x59 && w->meta[2] == 0x53 &&
	       w->meta[3] == 0x43 && w->meta[4] == 1 && ((((__u32)w->meta[6] << 8) | w->meta[7]) == n);
}

/* Loads the TCP payload (at most META_MAX bytes) into w->meta. */
static __always_inline int load_payload(void *ctx, enum dysco_ctx kind, struct dysco_pkt *p, struct syn_work *w)
{
	__u32 n = p->payload_len;
	w->meta_len = n;
	if (n == 0 || n > META_MAX)
		return 0;
	if (n < 1 || n > META_MAX)
		return -1;
	return ctx_load(ctx, kind, p->l4 + p->thl, w->meta, n) < 0 ? -1 : 0;
}

/* One's-complement sum (big-endian words) of w->meta[0, len), zero-padded to whole words. */
static __always_inline __u32 meta_sum(struct syn_work *w, __u32 len)
{
	if (len > META_MAX)
		return 0;
	__u32 words = (len + 3) & ~3u;
	for (__u32 k = 0; k < 4; k++)
		w->meta[len + k] = 0;
	if (words == 0 || words > META_MAX)
		return 0;
	__s64 r = bpf_csum_diff(0, 0, (__be32 *)w->meta, words, 0);
	if (r < 0)
		return 0;
	return csum_swab(csum_fold32((__u32)r));
}

/* ---- NAT tag option ------------------------------------------------------------- */

/* Removes the NAT tag option (8 bytes at p->nat_tag_off) from the header copy. */
__attribute__((noinline)) int strip_nat_tag(struct dysco_pkt *p)
{
	if (!p || !p->has_nat_tag)
		return 0;
	__u32 off = p->nat_tag_off;
	if (off < 20 || off > 52)
		return 0;
	for (__u32 i = 0; i < 40; i++) {
		__u32 at = off + i;
		if (at + 8 >= p->thl)
			break;
		p->tcp[at & 63] = p->tcp[(at + 8) & 63];
	}
	p->thl -= 8;
	p->tcp[12] = ((p->thl / 4) << 4) | (p->tcp[12] & 0x0f);
	p->has_nat_tag = 0;
	return 0;
}

/* Inserts the NAT tag option right after the fixed header, or counts that there is no room. */
__attribute__((noinline)) int add_nat_tag(struct dysco_pkt *p, __u32 tag)
{
	if (!p)
		return -1;
	if (p->thl + 8 > 60) {
		count(C_NAT_TAG_NO_ROOM);
		return 0;
	}
	for (int i = 39; i >= 0; i--) {
		__u32 at = 20 + i;
		if (at >= p->thl)
			continue;
		p->tcp[(at + 8) & 63] = p->tcp[at & 63];
	}
	p->tcp[20] = 253;
	p->tcp[21] = 8;
	p->tcp[22] = 0x44;
	p->tcp[23] = 0x59;
	WR32(p->tcp, 24, tag);
	p->thl += 8;
	p->tcp[12] = ((p->thl / 4) << 4) | (p->tcp[12] & 0x0f);
	return 0;
}

#endif
