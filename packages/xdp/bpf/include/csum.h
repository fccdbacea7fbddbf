/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internet checksum arithmetic (RFC 1071, RFC 1624 eqn. 3). A rewrite never
 * recomputes a checksum: it sums the difference of every changed 16-bit
 * word (~old + new) and folds it into the field, which for a valid input
 * gives exactly what a full computation would.
 */
#ifndef DYSCO_CSUM_H
#define DYSCO_CSUM_H

#include <linux/types.h>

static __always_inline __u32 csum_fold32(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return s;
}

/* One's-complement difference of the 16-bit word changing from `o` to `n`. */
static __always_inline __u32 csum_word_diff(__u32 o, __u32 n)
{
	return (~o & 0xffff) + (n & 0xffff);
}

/* Big-endian word at byte offset `at` of a buffer. */
#define RD16(b, at) ((((__u32)(b)[(at)]) << 8) | (b)[(at) + 1])
#define RD32(b, at) ((((__u32)(b)[(at)]) << 24) | (((__u32)(b)[(at) + 1]) << 16) | \
		     (((__u32)(b)[(at) + 2]) << 8) | (b)[(at) + 3])
#define WR16(b, at, v) do { (b)[(at)] = (__u8)((v) >> 8); (b)[(at) + 1] = (__u8)(v); } while (0)
#define WR32(b, at, v) do { (b)[(at)] = (__u8)((v) >> 24); (b)[(at) + 1] = (__u8)((v) >> 16); \
			     (b)[(at) + 2] = (__u8)((v) >> 8); (b)[(at) + 3] = (__u8)(v); } while (0)

/*
 * Sum of the differences of words [from, to) of two copies of a header,
 * skipping word `skip` (the checksum field itself), folded to 16 bits.
 * Unchanged words contribute nothing.
 */
static __always_inline __u32 csum_diff_words(const __u8 *before, const __u8 *after, __u32 from, __u32 to,
					     __u32 skip, __u32 limit)
{
	__u32 sum = 0;
	for (__u32 w = 0; w < limit; w++) {
		if (w < from || w >= to || w == skip)
			continue;
		__u32 o = RD16(before, 2 * w);
		__u32 n = RD16(after, 2 * w);
		if (o != n)
			sum += csum_word_diff(o, n);
	}
	return csum_fold32(sum);
}

/* One's-complement sum of the first `words` 16-bit words of a header, skipping word `skip`. */
static __always_inline __u32 csum_sum_words(const __u8 *b, __u32 words, __u32 skip, __u32 limit)
{
	__u32 sum = 0;
	for (__u32 w = 0; w < limit; w++) {
		if (w >= words || w == skip)
			continue;
		sum += RD16(b, 2 * w);
	}
	return csum_fold32(sum);
}

/* HC' = ~(~HC + diff): folds a difference into a checksum field value. */
static __always_inline __u16 csum_apply(__u16 check, __u32 diff)
{
	return (__u16)~csum_fold32((~(__u32)check & 0xffff) + diff);
}

static __always_inline __u32 csum_add16(__u32 a, __u32 b)
{
	return csum_fold32(a + b);
}

/* A difference computed over a region starting at an odd offset counts byte-swapped. */
static __always_inline __u32 csum_swab(__u32 d)
{
	return ((d & 0xff) << 8) | ((d >> 8) & 0xff);
}

#endif
