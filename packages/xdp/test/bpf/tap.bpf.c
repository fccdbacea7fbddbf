/* SPDX-License-Identifier: Apache-2.0 */
/* Test helper: copies every frame it sees into a ring buffer and drops it. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TAP_MAX 2048

struct tap_record {
	__u32 len;
	__u32 pad;
	__u8 data[TAP_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} tap_frames SEC(".maps");

SEC("tc")
int dysco_test_tap(struct __sk_buff *skb)
{
	__u32 len = skb->len;
	struct tap_record *r = bpf_ringbuf_reserve(&tap_frames, sizeof(*r), 0);
	if (!r)
		return TC_ACT_SHOT;
	if (len >= TAP_MAX) {
		bpf_ringbuf_discard(r, 0);
		return TC_ACT_SHOT;
	}
	len &= TAP_MAX - 1;
	r->len = len;
	if (len < 1 || bpf_skb_load_bytes(skb, 0, r->data, len) < 0) {
		bpf_ringbuf_discard(r, 0);
		return TC_ACT_SHOT;
	}
	bpf_ringbuf_submit(r, 0);
	return TC_ACT_SHOT;
}
