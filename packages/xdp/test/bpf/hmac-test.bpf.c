/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test program for include/hmac.h (hmac.test.ts): takes key states, a
 * message and a mode from hmac_in, copies the message into a per-CPU work
 * struct laid out as the data plane's (a meta[520] buffer followed by other
 * fields), and writes the result code and tag into hmac_out.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "../../bpf/include/hmac.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * MODE_TAG: message copied into the per-CPU meta buffer, tag into map memory.
 * MODE_VERIFY: the same, checked against in->expect.
 * MODE_DIRECT: message read in place from the (not per-CPU) input map, tag into the stack.
 */
enum { MODE_TAG = 0, MODE_VERIFY = 1, MODE_NONE = 2, MODE_DIRECT = 3 };

struct hmac_in {
	struct hmac_key key; /* 0 */
	__u32 len;           /* 64 */
	__u32 mode;          /* 68 */
	__u32 msg_off;       /* 72: where the message starts in meta (0 or 8) */
	__u32 pad;
	struct hmac_tag expect; /* 80 */
	__u8 msg[520];          /* 96 */
};

struct hmac_out {
	__s32 rc;
	__u32 runs;
	struct hmac_tag tag;
};

/* like the data plane's syn_work: the message sits in a buffer among other fields */
struct test_work {
	__u8 meta[520];
	__u32 meta_len;
	__u32 pad;
	struct hmac_work hw;
	struct hmac_tag tag;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hmac_in);
} hmac_in SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hmac_out);
} hmac_out SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct test_work);
} hmac_scratch SEC(".maps");

SEC("xdp")
int hmac_test(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct hmac_in *in = bpf_map_lookup_elem(&hmac_in, &zero);
	struct hmac_out *out = bpf_map_lookup_elem(&hmac_out, &zero);
	struct test_work *w = bpf_map_lookup_elem(&hmac_scratch, &zero);
	if (!in || !out || !w)
		return XDP_ABORTED;
	out->runs++;
	if (in->mode == MODE_NONE) {
		out->rc = 0;
		return XDP_PASS;
	}
	if (in->mode == MODE_DIRECT) {
		struct hmac_tag tag;
		__builtin_memset(&tag, 0, sizeof(tag));
		out->rc = hmac_sha256_tag(&w->hw, &in->key, (const struct hmac_msg *)in->msg, in->len, &tag);
		out->tag = tag;
		return XDP_PASS;
	}
	__builtin_memcpy(w->meta, in->msg, sizeof(w->meta));
	w->meta_len = in->len;
	const struct hmac_msg *msg = (const struct hmac_msg *)(in->msg_off ? w->meta + 8 : w->meta);
	int rc;
	if (in->mode == MODE_VERIFY) {
		rc = hmac_sha256_verify(&w->hw, &in->key, msg, w->meta_len, &in->expect);
		out->tag = w->hw.tag;
	} else {
		rc = hmac_sha256_tag(&w->hw, &in->key, msg, w->meta_len, &w->tag);
		out->tag = w->tag;
	}
	out->rc = rc;
	return XDP_PASS;
}
