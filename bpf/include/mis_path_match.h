/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The policies' path globs, matched in the kernel: the position automata user space compiled
 * (struct mis_glob_word in mis_shared.h, src/Mis.Enforcer/Policy/PathAutomaton.cs) run over a
 * path the kernel produced itself (d_path of the opened file), never over user memory. One pass
 * over the path per word of positions decides every glob rule in that word at once, so the cost
 * grows with the path's length and the number of words, not with the number of rules.
 */
#ifndef MIS_PATH_MATCH_H
#define MIS_PATH_MATCH_H

#include "mis_maps.h"

struct mis_path_buf {
	char path[MIS_PATH_MAX];
};

/* One path per CPU: a hook cannot hold MIS_PATH_MAX bytes on its 512-byte stack. Hooks run with
 * preemption off (or migration disabled for sleepable ones), so a CPU's slot is theirs alone. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mis_path_buf);
} mis_path_scratch SEC(".maps");

/* The positions reachable from `s` without reading a byte. */
static __always_inline __u64 mis_glob_close(const struct mis_glob_word *t, __u64 s)
{
	for (int k = 0; k < MIS_GLOB_CLOSURE_STEPS; k++)
		s |= ((s & t->eps1) << 1) | ((s & t->eps3) << 3);
	return s;
}

/* One scan of one word over one path; bpf_loop's context (the verifier checks the step once,
 * not once per byte of every path length). */
struct mis_glob_scan {
	const struct mis_glob_word *t;
	const struct mis_path_buf *b;
	__u64 s;    /* active positions */
	__u64 hits; /* final positions reached */
	__u64 *rules;
};

/* Reads byte i of the path: returns 1 (stop) at its end or when no position is left. */
static long mis_glob_step(__u64 i, void *data)
{
	struct mis_glob_scan *x = data;
	const struct mis_glob_word *t = x->t;
	__u64 s = x->s;
	__u8 c;

	if (i >= MIS_PATH_MAX)
		return 1;
	c = x->b->path[i];
	if (!c) {
		x->hits |= s & t->final;
		return 1;
	}
	if (c == '/')
		x->hits |= s & t->tree;
	s = ((s & t->adv[c]) << 1) | (s & t->loop[c]);
	x->s = s ? mis_glob_close(t, s) : 0;
	return !s;
}

/* Adds final position p's rule to the rule set when p was reached. */
static long mis_glob_rule(__u64 p, void *data)
{
	struct mis_glob_scan *x = data;
	__u8 r;

	if (p >= 64 || !(x->hits & (1ULL << p)))
		return p >= 64;
	r = x->t->rule[p];
	if (r != MIS_GLOB_NO_RULE)
		x->rules[(r >> 6) & 3] |= 1ULL << (r & 63);
	return 0;
}

/* Every glob rule of `policy_id` that matches the path in `b`, as a rule set; returns the words scanned. */
static __always_inline __u32 mis_glob_match_all(__u32 policy_id, const struct mis_path_buf *b, __u64 *rules)
{
	struct mis_glob_key key = { .policy_id = policy_id };
	__u32 w;

	for (w = 0; w < MIS_GLOB_WORDS; w++) {
		struct mis_glob_scan x = { .b = b, .rules = rules };

		key.word = w;
		x.t = bpf_map_lookup_elem(&mis_globs, &key);
		if (!x.t)
			break;
		x.s = x.t->start;
		bpf_loop(MIS_PATH_MAX, mis_glob_step, &x, 0);
		if (x.hits)
			bpf_loop(64, mis_glob_rule, &x, 0);
	}
	return w;
}

#endif /* MIS_PATH_MATCH_H */
