/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HMAC-SHA256 (RFC 2104, FIPS 180-4) for BPF programs, tag truncated to its
 * first 16 bytes.
 *
 * The key never reaches the kernel: user space (src/hmac-key.ts) compresses
 * the one-block K ^ ipad and K ^ opad and stores the two SHA-256 states in a
 * struct hmac_key. The kernel hashes only the message blocks (inner hash
 * over 64 + len bytes) and one outer block (64 + 32 bytes).
 *
 * Verifier notes. The work is done by global (non-static, noinline)
 * functions whose arguments are struct pointers and scalars, so each is
 * verified once, whatever calls it:
 *   hmac_compress      one SHA-256 compression of hw->w[0..15] into hw->state,
 *                      64 rounds unrolled (straight-line code, no branches);
 *   hmac_load_block    message block k (with padding) into hw->w[0..15];
 *   hmac_sha256_tag    the whole tag; the message blocks go through bpf_loop;
 *   hmac_sha256_verify the tag, compared in constant time with an expected one.
 * A global function's struct-pointer argument is checked by the verifier at
 * the call only as "sizeof(struct) bytes readable and writable there", so
 * msg may point anywhere with HMAC_MSG_MAX bytes after it inside a map value
 * (e.g. (const struct hmac_msg *)w->meta with __u8 meta[520]).
 *
 * Measured (clang 14, Linux 6.18, test/hmac.test.ts): the whole library
 * costs a program about 8,900 processed instructions, verified once per
 * program; stack frames 64 (hmac_sha256_tag, with bpf_loop's inlining),
 * 0 (callback), 32 (hmac_load_block), 80 (hmac_compress), 16
 * (hmac_sha256_verify): a call adds at most 144 bytes (160 through verify)
 * to the caller's chain. About 300 ns per compression; a tag needs
 * (len + 9 + 63) / 64 + 1 of them (about 1 us for 100 bytes).
 *
 * Use:
 *   struct work { __u8 meta[520]; ...; struct hmac_tag rx_tag; struct hmac_work hw; };  // per-CPU array value
 *   struct hmac_key *key = bpf_map_lookup_elem(&keys, &id);    // from hmacKeyStates()
 *   if (!w || !key) ...;
 *   struct hmac_tag tag;
 *   if (hmac_sha256_tag(&w->hw, key, (const struct hmac_msg *)w->meta, len, &tag) != HMAC_OK) drop;
 *   if (hmac_sha256_verify(&w->hw, key, (const struct hmac_msg *)w->meta, len,
 *                          &w->rx_tag) != HMAC_OK) drop;
 *
 * Timing: the tag's computation does not branch on message or key bytes
 * (padding is selected arithmetically); it depends on len only through the
 * number of blocks.
 */
#ifndef DYSCO_HMAC_H
#define DYSCO_HMAC_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* The longest message; the msg argument must have this many bytes readable. */
#define HMAC_MSG_MAX 512
#define HMAC_TAG_LEN 16
/* Inner-hash blocks after the ipad block for HMAC_MSG_MAX bytes: 9. */
#define HMAC_MAX_BLOCKS ((HMAC_MSG_MAX + 9 + 63) / 64)

enum hmac_result {
	HMAC_OK = 0,       /* tag computed / tag matches */
	HMAC_MISMATCH = 1, /* hmac_sha256_verify: the tag does not match */
	HMAC_EINVAL = -1,  /* a NULL pointer or len > HMAC_MSG_MAX */
};

/* SHA-256 states after compressing K ^ ipad (inner) and K ^ opad (outer), host-order words. */
struct hmac_key {
	__u32 inner[8];
	__u32 outer[8];
};

struct hmac_msg {
	__u8 b[HMAC_MSG_MAX];
};

struct hmac_tag {
	__u8 b[HMAC_TAG_LEN];
};

/* Scratch, one per CPU (a per-CPU array value, or a member of one): 312 bytes. */
struct hmac_work {
	__u32 state[8];
	__u32 w[64];         /* message schedule */
	__u32 len;           /* message length of the tag being computed */
	__u32 nblocks;       /* its inner blocks after the ipad block */
	struct hmac_tag tag; /* hmac_sha256_verify's computed tag */
};

/*
 * Keeps clang from interleaving rounds and schedule steps: with only ten BPF
 * registers, interleaving spills many words to the stack, and the stack is
 * shared by the whole call chain (512 bytes).
 */
#define HMAC_BARRIER() asm volatile("" ::: "memory")

#define HMAC_ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define HMAC_S0(x) (HMAC_ROTR(x, 2) ^ HMAC_ROTR(x, 13) ^ HMAC_ROTR(x, 22))
#define HMAC_S1(x) (HMAC_ROTR(x, 6) ^ HMAC_ROTR(x, 11) ^ HMAC_ROTR(x, 25))
#define HMAC_s0(x) (HMAC_ROTR(x, 7) ^ HMAC_ROTR(x, 18) ^ ((x) >> 3))
#define HMAC_s1(x) (HMAC_ROTR(x, 17) ^ HMAC_ROTR(x, 19) ^ ((x) >> 10))
#define HMAC_CH(e, f, g) ((g) ^ ((e) & ((f) ^ (g))))
#define HMAC_MAJ(a, b, c) (((a) & (b)) | ((c) & ((a) | (b))))

/* One round; the caller rotates the roles of the eight variables instead of moving them. */
#define HMAC_ROUND(a, b, c, d, e, f, g, h, k, wt)                          \
	do {                                                               \
		__u32 t1_ = (h) + HMAC_S1(e) + HMAC_CH(e, f, g) + (k) + (wt); \
		__u32 t2_ = HMAC_S0(a) + HMAC_MAJ(a, b, c);                \
		(d) += t1_;                                                \
		(h) = t1_ + t2_;                                           \
		HMAC_BARRIER();                                            \
	} while (0)

#define HMAC_ROUND8(i, k0, k1, k2, k3, k4, k5, k6, k7)                 \
	do {                                                           \
		HMAC_ROUND(a, b, c, d, e, f, g, h, k0, w[(i) + 0]);    \
		HMAC_ROUND(h, a, b, c, d, e, f, g, k1, w[(i) + 1]);    \
		HMAC_ROUND(g, h, a, b, c, d, e, f, k2, w[(i) + 2]);    \
		HMAC_ROUND(f, g, h, a, b, c, d, e, k3, w[(i) + 3]);    \
		HMAC_ROUND(e, f, g, h, a, b, c, d, k4, w[(i) + 4]);    \
		HMAC_ROUND(d, e, f, g, h, a, b, c, k5, w[(i) + 5]);    \
		HMAC_ROUND(c, d, e, f, g, h, a, b, k6, w[(i) + 6]);    \
		HMAC_ROUND(b, c, d, e, f, g, h, a, k7, w[(i) + 7]);    \
	} while (0)

/*
 * Compresses the block whose first 16 schedule words are in hw->w into
 * hw->state. Straight-line code with constant offsets: verified once, fast.
 */
__attribute__((noinline)) int hmac_compress(struct hmac_work *hw)
{
	if (!hw)
		return HMAC_EINVAL;
	__u32 *w = hw->w;
#pragma clang loop unroll(full)
	for (int t = 16; t < 64; t++) {
		w[t] = HMAC_s1(w[t - 2]) + w[t - 7] + HMAC_s0(w[t - 15]) + w[t - 16];
		HMAC_BARRIER();
	}

	__u32 a = hw->state[0], b = hw->state[1], c = hw->state[2], d = hw->state[3];
	__u32 e = hw->state[4], f = hw->state[5], g = hw->state[6], h = hw->state[7];
	/* FIPS 180-4 section 4.2.2: the first 32 bits of the fractional parts of the cube roots of the first 64 primes */
	HMAC_ROUND8(0, 0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5);
	HMAC_ROUND8(8, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174);
	HMAC_ROUND8(16, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da);
	HMAC_ROUND8(24, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967);
	HMAC_ROUND8(32, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85);
	HMAC_ROUND8(40, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070);
	HMAC_ROUND8(48, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3);
	HMAC_ROUND8(56, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2);
	hw->state[0] += a;
	hw->state[1] += b;
	hw->state[2] += c;
	hw->state[3] += d;
	hw->state[4] += e;
	hw->state[5] += f;
	hw->state[6] += g;
	hw->state[7] += h;
	return HMAC_OK;
}

/*
 * Block k (0-based, after the ipad block) of the padded inner message
 * msg[0..hw->len) || 0x80 || zeros || 64-bit big-endian bit length of
 * 64 + len bytes, into hw->w[0..15] as big-endian words.
 */
__attribute__((noinline)) int hmac_load_block(struct hmac_work *hw, const struct hmac_msg *msg, __u32 k)
{
	if (!hw || !msg)
		return HMAC_EINVAL;
	__u32 len = hw->len;
	if (len > HMAC_MSG_MAX || k >= HMAC_MAX_BLOCKS)
		return HMAC_EINVAL;
	__u32 off = k * 64;
	/* hide off's derivation from clang so that the bound the verifier needs stays in the code */
	asm volatile("" : "+r"(off));
	if (off + 64 <= len && off <= HMAC_MSG_MAX - 64) {
		/* a whole block of message bytes */
		const __u8 *p = msg->b + off;
#pragma clang loop unroll(full)
		for (int t = 0; t < 16; t++)
			hw->w[t] = (__u32)p[4 * t] << 24 | (__u32)p[4 * t + 1] << 16 | (__u32)p[4 * t + 2] << 8 |
				   (__u32)p[4 * t + 3];
		return HMAC_OK;
	}
	/*
	 * The block holding the message's end, the 0x80 byte or the length:
	 * each byte is selected arithmetically (positions and len are below
	 * 2^31), without branches, so the verifier sees straight-line code.
	 */
#pragma clang loop unroll(disable)
	for (__u32 t = 0; t < 16; t++) {
		__u32 word = 0;
#pragma clang loop unroll(full)
		for (int j = 0; j < 4; j++) {
			__u32 pos = off + 4 * t + j;
			__u32 byte = msg->b[pos & (HMAC_MSG_MAX - 1)];
			__u32 before = (pos - len) >> 31;         /* 1 when pos < len */
			__u32 at = ((pos ^ len) - 1) >> 31;       /* 1 when pos == len */
			byte = (byte & (0u - before)) | (0x80 & (0u - at));
			word = word << 8 | byte;
		}
		hw->w[t & 15] = word;
	}
	/* the last block ends with the bit length; (64 + len) * 8 < 2^32, so its high word stays 0 */
	if (k + 1 == hw->nblocks)
		hw->w[15] = (64 + len) * 8;
	return HMAC_OK;
}

struct hmac_loop {
	struct hmac_work *hw;
	const struct hmac_msg *msg;
};

static long hmac_block_cb(__u32 k, void *arg)
{
	struct hmac_loop *l = arg;
	struct hmac_work *hw = l->hw;
	if (!hw || k >= hw->nblocks)
		return 1;
	if (hmac_load_block(hw, l->msg, k) != HMAC_OK)
		return 1;
	hmac_compress(hw);
	return 0;
}

/*
 * tag = the first 16 bytes of HMAC-SHA256(K, msg[0..len)), for the key
 * whose states are *key; len <= HMAC_MSG_MAX. hw is scratch (per CPU).
 * msg needs HMAC_MSG_MAX readable bytes whatever len is; tag 16 writable
 * bytes (it may be &hw->tag). Returns HMAC_OK or HMAC_EINVAL.
 */
__attribute__((noinline)) int hmac_sha256_tag(struct hmac_work *hw, const struct hmac_key *key,
					      const struct hmac_msg *msg, __u32 len, struct hmac_tag *tag)
{
	if (!hw || !key || !msg || !tag || len > HMAC_MSG_MAX)
		return HMAC_EINVAL;
	/* inner hash: the ipad block is already in key->inner */
	__builtin_memcpy(hw->state, key->inner, sizeof(hw->state));
	hw->len = len;
	hw->nblocks = (len + 9 + 63) / 64;
	struct hmac_loop l = { .hw = hw, .msg = msg };
	bpf_loop(HMAC_MAX_BLOCKS, hmac_block_cb, &l, 0);
	/* outer hash: the opad block is in key->outer; one block of the inner digest and padding */
#pragma clang loop unroll(full)
	for (int i = 0; i < 8; i++)
		hw->w[i] = hw->state[i];
	hw->w[8] = 0x80000000;
#pragma clang loop unroll(full)
	for (int i = 9; i < 15; i++)
		hw->w[i] = 0;
	hw->w[15] = (64 + 32) * 8;
	__builtin_memcpy(hw->state, key->outer, sizeof(hw->state));
	hmac_compress(hw);
#pragma clang loop unroll(full)
	for (int i = 0; i < 4; i++) {
		__u32 s = hw->state[i];
		tag->b[4 * i] = s >> 24;
		tag->b[4 * i + 1] = s >> 16;
		tag->b[4 * i + 2] = s >> 8;
		tag->b[4 * i + 3] = s;
	}
	return HMAC_OK;
}

/* 1 when the 16 bytes at a and b are equal, else 0; time independent of where they differ. */
static __always_inline int hmac_tag_equal(const __u8 *a, const __u8 *b)
{
	__u32 diff = 0;
#pragma clang loop unroll(full)
	for (int i = 0; i < HMAC_TAG_LEN; i++)
		diff |= a[i] ^ b[i];
	return ((diff - 1) >> 8) & 1;
}

/*
 * Checks an expected tag against the message: HMAC_OK when it matches,
 * HMAC_MISMATCH when not, HMAC_EINVAL for bad arguments (reject on any
 * nonzero result). The computed tag is left in hw->tag.
 */
__attribute__((noinline)) int hmac_sha256_verify(struct hmac_work *hw, const struct hmac_key *key,
						 const struct hmac_msg *msg, __u32 len, const struct hmac_tag *expect)
{
	if (!hw || !expect)
		return HMAC_EINVAL;
	int rc = hmac_sha256_tag(hw, key, msg, len, &hw->tag);
	if (rc != HMAC_OK)
		return rc;
	return hmac_tag_equal(hw->tag.b, expect->b) ? HMAC_OK : HMAC_MISMATCH;
}

#endif
