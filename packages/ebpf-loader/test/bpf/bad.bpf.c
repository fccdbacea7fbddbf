// SPDX-License-Identifier: GPL-2.0
// A program the verifier must reject: it reads packet memory without checking data_end.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_fine(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int xdp_unchecked(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	return data[20] == 1 ? XDP_DROP : XDP_PASS; /* no bounds check: invalid access to packet */
}

char LICENSE[] SEC("license") = "GPL";
