/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The DEFCON state machine: the one implementation every deny point calls (the cgroup socket
 * hooks, the exec backstop, and the mis_report program through which user-space deny points
 * report). Its C# twin is src/Mis.Enforcer/Defcon/DefconStateMachine.cs; a differential test
 * holds the two to identical trajectories.
 *
 * Concurrency without locks (tracing programs historically cannot take bpf_spin_lock, and a
 * lock on every syscall of a managed cgroup would serialise its CPUs):
 * - The level is never stored: it is a pure function of the violation count and the cgroup's
 *   thresholds, so every CPU derives the same level from the same count.
 * - A violation is one __sync_fetch_and_add. Each CPU sees a distinct old value, so exactly one
 *   CPU's increment crosses each threshold, and that CPU emits the transition (and the kill).
 * - Decay is lazy (applied on the next syscall, violation, or query, so it needs no timer) and
 *   claimed by a compare-and-swap of the decay anchor: of several CPUs noticing the same elapsed
 *   intervals, only the one whose CAS succeeds subtracts, with a bounded CAS loop on the count.
 *   A violation moves the anchor to "now", which makes a concurrent decay's CAS fail: the
 *   interval was not violation-free after all.
 */
#ifndef MIS_DEFCON_H
#define MIS_DEFCON_H

#include "mis_events.h"

#define MIS_DECAY_CAS_TRIES 8

/* DEFCON level for a violation count: 5 minus the number of thresholds reached. */
static __always_inline __u32 mis_level_for(const struct mis_defcon_config *c, __u64 violations)
{
	__u32 level = MIS_DEFCON_NORMAL;

	for (int i = 0; i < MIS_DEFCON_THRESHOLDS; i++)
		if (violations >= c->thresholds[i])
			level--;
	return level < MIS_DEFCON_MIN ? MIS_DEFCON_MIN : level;
}

static __always_inline __u32 mis_level(const struct mis_cgroup_state *s)
{
	return mis_level_for(&s->config, READ_ONCE(s->violations));
}

/* Busy-wait per syscall at a level: none at 5, the configured one at 4/3/2, level 2's at 1
 * (which only lasts until the kill, or for good when kill_at_level_1 is off). */
static __always_inline __u64 mis_slowdown_ns(const struct mis_cgroup_state *s, __u32 level)
{
	if (level >= MIS_DEFCON_NORMAL)
		return 0;
	if (level == 4)
		return s->config.slowdown_ns[0];
	if (level == 3)
		return s->config.slowdown_ns[1];
	return s->config.slowdown_ns[2];
}

/*
 * When decay would change the level derived from (v, anchor): the CLOCK_MONOTONIC ns at which
 * enough full intervals have passed for v - steps * decay_amount to fall below the count that
 * holds the level (mis_decay's arithmetic), or 0 for never.
 */
static __always_inline __u64 mis_level_until_ns(const struct mis_cgroup_state *s, __u64 v, __u64 anchor, __u64 flags)
{
	const struct mis_defcon_config *c = &s->config;
	__u64 interval = c->decay_interval_ns, amount = c->decay_amount, keep, steps;
	__u32 level = mis_level_for(c, v);

	if (level >= MIS_DEFCON_NORMAL || !interval || !amount || (flags & MIS_CG_KILLED))
		return 0;
	keep = c->thresholds[(MIS_DEFCON_THRESHOLDS - level) & (MIS_DEFCON_THRESHOLDS - 1)];
	steps = (v - keep) / amount + 1;
	if (steps > (~0ULL - anchor) / interval)
		return 0;
	return anchor + steps * interval;
}

/*
 * Writes the cgroup's word of mis_defcon_view (see mis_shared.h) after a change of its count,
 * decay anchor or kill flag. Several CPUs may publish at once, each from its own reads of the
 * state, so each takes a ticket after its change and before its reads, and a word is replaced
 * only by one with a later ticket: the word left standing was read after every change whose
 * publication was ticketed before it. A slot whose word is 0 is not in use: never written.
 *
 * mis_publish and mis_decay_due are global functions, checked by the verifier once per program
 * instead of on every path of every hook that counts or decays: inlined, their bounded CAS
 * loops were most of each program's verification (about 90 ms of each one's load, and ten
 * programs load at every start). They return 0; a global function must return a scalar, and
 * its pointer arguments may be NULL as far as the verifier knows.
 */
__attribute__((noinline)) int mis_publish(struct mis_cgroup_state *s)
{
	const __u64 gen_mask = (1ULL << MIS_VIEW_GEN_BITS) - 1;
	__u64 gen, v, anchor, until, next, old, *word;
	__u32 slot;

	if (!s)
		return 0;
	slot = s->view_slot;
	word = bpf_map_lookup_elem(&mis_defcon_view, &slot);
	if (!word)
		return 0;
	gen = (__sync_fetch_and_add(&s->view_gen, 1) + 1) & gen_mask;
	v = READ_ONCE(s->violations);
	anchor = READ_ONCE(s->decay_anchor_ns);
	until = mis_level_until_ns(s, v, anchor, READ_ONCE(s->flags));
	until = until ? until / 1000000 : MIS_VIEW_UNTIL_NEVER;
	next = mis_level_for(&s->config, v) | gen << MIS_VIEW_LEVEL_BITS | until << MIS_VIEW_UNTIL_SHIFT;
	for (int i = 0; i < MIS_DECAY_CAS_TRIES; i++) {
		old = READ_ONCE(*word);
		if (!old || (__s16)(((old >> MIS_VIEW_LEVEL_BITS) & gen_mask) - gen) > 0)
			return 0;
		if (__sync_val_compare_and_swap(word, old, next) == old)
			return 0;
	}
	return 0;
}

/* The count part of mis_decay, once `steps` intervals are claimed. */
static __always_inline void mis_decay_count(struct mis_cgroup_state *s, __u64 steps, __u64 now, const struct mis_actor *a)
{
	__u64 amount = s->config.decay_amount, ceil, v, nv;

	if (!amount)
		return;
	for (int i = 0; i < MIS_DECAY_CAS_TRIES; i++) {
		v = READ_ONCE(s->violations);
		if (!v)
			return;
		/* v - steps * amount, floored at 0, without ever overflowing the product:
		 * steps < ceil(v / amount) implies steps * amount < v. */
		ceil = v / amount + (v % amount ? 1 : 0);
		nv = steps >= ceil ? 0 : v - steps * amount;
		if (__sync_val_compare_and_swap(&s->violations, v, nv) == v) {
			__u32 before = mis_level_for(&s->config, v);
			__u32 after = mis_level_for(&s->config, nv);

			if (before != after)
				mis_emit_small(MIS_EV_DEFCON, now, s, a, nv, before, after, 0);
			return;
		}
	}
	/* Lost the count to MIS_DECAY_CAS_TRIES concurrent violations in a row: those violations
	 * are fresher evidence than the decay, so dropping it is the right call. */
}

/*
 * Forgives decay_amount violations for every full decay_interval since `anchor`, the anchor
 * mis_decay read and found at least one interval before `now`. A global function (see
 * mis_publish), so `due` carries the actor's comm (its `current` is not read): the verifier
 * checks a global function without the caller's constants, and would see a
 * bpf_get_current_comm call that cgroup_skb programs (mis_egress) may not make on Linux 6.1.
 */
__attribute__((noinline)) int mis_decay_due(struct mis_cgroup_state *s, __u64 now, __u64 anchor, const struct mis_actor *due)
{
	struct mis_actor a;
	__u64 interval, steps;

	if (!s || !due)
		return 0;
	a = *due;
	a.current = 0;
	interval = s->config.decay_interval_ns;
	if (!interval) /* for the verifier: mis_decay checked it */
		return 0;
	steps = (now - anchor) / interval;
	if (__sync_val_compare_and_swap(&s->decay_anchor_ns, anchor, anchor + steps * interval) != anchor)
		return 0; /* another CPU claimed these intervals, or a violation just arrived */
	mis_decay_count(s, steps, now, &a);
	mis_publish(s);
	return 0;
}

/*
 * Lazy decay (see the top of this file): forgives what full decay intervals since the anchor
 * allow, through mis_decay_due when any are due. A killed cgroup does not decay: DEFCON 1 is
 * final. Emits a DEFCON event when the level rises.
 */
static __always_inline void mis_decay(struct mis_cgroup_state *s, __u64 now, const struct mis_actor *a)
{
	__u64 interval = s->config.decay_interval_ns;
	struct mis_actor due;
	__u64 anchor;

	if (!interval || (READ_ONCE(s->flags) & MIS_CG_KILLED))
		return;
	anchor = READ_ONCE(s->decay_anchor_ns);
	/* now < anchor happens when a caller supplies its own clock (mis_report's now_ns). */
	if (now <= anchor || now - anchor < interval)
		return;
	/* A copy, never `a` itself: the address of a caller's actor given to a function clang does
	 * not inline would make every later read of its `current` a load, which Linux 6.1's
	 * verifier does not always know to be 0 (mis_egress, where no comm helper may be called). */
	due.pid = a->pid;
	due.tid = a->tid;
	due.current = 0;
	if (a->current) {
		bpf_get_current_comm(due.comm, sizeof(due.comm));
	} else {
		/* Volatile: clang would otherwise read the comm from wherever the caller copied it from
		 * (mis_report's context, through a pointer the verifier refuses). */
		const volatile __u32 *from = (const volatile __u32 *)a->comm;
		__u32 *to = (__u32 *)due.comm;

		to[0] = from[0];
		to[1] = from[1];
		to[2] = from[2];
		to[3] = from[3];
	}
	mis_decay_due(s, now, anchor, &due);
}

struct mis_outcome {
	__u64 violations;
	__u32 before;
	__u32 after;
};

/*
 * Counts one violation for the cgroup (decay applied first) and emits, in this order: the
 * violation record `e` (reserved and target-filled by the caller; may be NULL when the ring
 * buffer is full, the drop is already counted), a DEFCON record if a threshold was crossed,
 * and a KILL record if DEFCON 1 was entered with kill_at_level_1. In learning mode the
 * violation is recorded (and counted in learning_violations) but does not escalate.
 * The caller still decides what to do to the task (deny, SIGKILL where the helper exists).
 */
static __always_inline struct mis_outcome mis_count_violation(struct mis_cgroup_state *s, __u64 now,
							      const struct mis_actor *a, __u32 op,
							      struct mis_event *e)
{
	struct mis_outcome out;
	__u64 old;

	mis_decay(s, now, a);
	mis_stat_inc(MIS_STAT_VIOLATIONS);
	if (READ_ONCE(s->flags) & MIS_CG_LEARNING) {
		__sync_fetch_and_add(&s->learning_violations, 1);
		out.violations = READ_ONCE(s->violations);
		out.before = out.after = mis_level_for(&s->config, out.violations);
	} else {
		WRITE_ONCE(s->decay_anchor_ns, now);
		WRITE_ONCE(s->last_violation_ns, now);
		old = __sync_fetch_and_add(&s->violations, 1);
		out.violations = old + 1;
		out.before = mis_level_for(&s->config, old);
		out.after = mis_level_for(&s->config, old + 1);
		if (out.after == MIS_DEFCON_MIN && out.before != MIS_DEFCON_MIN && s->config.kill_at_level_1)
			__sync_fetch_and_or(&s->flags, (__u64)MIS_CG_KILLED);
		mis_publish(s);
	}

	if (e) {
		mis_event_fill(e, MIS_EV_VIOLATION, now, s, a, out.violations, out.before, out.after);
		e->op = op;
		e->decision = MIS_DECISION_DENY;
		bpf_ringbuf_submit(e, 0);
	}
	if (out.before != out.after) {
		mis_stat_inc(MIS_STAT_ESCALATIONS); /* one increment crosses at most one threshold */
		mis_emit_small(MIS_EV_DEFCON, now, s, a, out.violations, out.before, out.after, 0);
		if (out.after == MIS_DEFCON_MIN && s->config.kill_at_level_1)
			mis_emit_small(MIS_EV_KILL, now, s, a, out.violations, out.before, out.after, 0);
	}
	return out;
}

/*
 * mis_count_violation, inlined once for a reserved record and once for none: each copy tests
 * `e` against NULL at compile time, so the program never tests a record it has already tested.
 * Verifiers before Linux 6.2 do not know that a tested record cannot be NULL when it is tested
 * again after a reload from the stack, and refuse the program for a record "never submitted".
 */
static __always_inline struct mis_outcome mis_violation(struct mis_cgroup_state *s, __u64 now,
							const struct mis_actor *a, __u32 op,
							struct mis_event *e)
{
	if (e)
		return mis_count_violation(s, now, a, op, e);
	return mis_count_violation(s, now, a, op, NULL);
}

/*
 * The event of one operation a trace rule lets through (a hook's, or the supervisor's through
 * mis_report), reserved and filled but for its target (the caller writes it and submits); NULL
 * when the ring buffer is full.
 */
static __always_inline struct mis_event *mis_trace_event(struct mis_cgroup_state *s, __u64 now,
							 const struct mis_actor *actor, __u32 op)
{
	struct mis_event *e = mis_event_reserve_full();
	__u64 v;
	__u32 level;

	if (!e)
		return NULL;
	v = READ_ONCE(s->violations);
	level = mis_level_for(&s->config, v);
	mis_event_fill(e, MIS_EV_TRACE, now, s, actor, v, level, level);
	e->op = op;
	e->decision = MIS_DECISION_TRACE;
	return e;
}

/*
 * A manual override (the gRPC SetDefcon): sets the violation count to the entry count of
 * `level` (0 for DEFCON 5, thresholds[4 - level] otherwise), whether that raises or lowers the
 * level, and emits one DEFCON record for the change (and KILL when it enters DEFCON 1 with
 * kill_at_level_1). The count is exchanged, not added to, so violations counted concurrently
 * on other CPUs land on top of the new value. KILLED is never cleared: DEFCON 1 with kill is
 * final, so user space refuses to lower a killed cgroup. Returns before/after like a violation.
 */
static __always_inline struct mis_outcome mis_set_level(struct mis_cgroup_state *s, __u64 now,
							const struct mis_actor *a, __u32 level)
{
	struct mis_outcome out;
	__u64 target = 0, old;

	if (level >= 1 && level <= 4)
		target = s->config.thresholds[(4 - level) & 3];
	old = __sync_lock_test_and_set(&s->violations, target);
	WRITE_ONCE(s->decay_anchor_ns, now);
	out.violations = target;
	out.before = mis_level_for(&s->config, old);
	out.after = mis_level_for(&s->config, target);
	if (out.after < out.before)
		mis_stat_add(MIS_STAT_ESCALATIONS, out.before - out.after);
	if (out.after == MIS_DEFCON_MIN && out.before != MIS_DEFCON_MIN && s->config.kill_at_level_1)
		__sync_fetch_and_or(&s->flags, (__u64)MIS_CG_KILLED);
	mis_publish(s);
	if (out.before != out.after) {
		mis_emit_small(MIS_EV_DEFCON, now, s, a, out.violations, out.before, out.after, 0);
		if (out.after == MIS_DEFCON_MIN && s->config.kill_at_level_1)
			mis_emit_small(MIS_EV_KILL, now, s, a, out.violations, out.before, out.after, 0);
	}
	return out;
}

/* Whether the cgroup's tasks must die: DEFCON 1 entered with kill_at_level_1. */
static __always_inline bool mis_must_kill(const struct mis_cgroup_state *s)
{
	return READ_ONCE(s->flags) & MIS_CG_KILLED;
}

#define MIS_SIGKILL 9

/* SIGKILL to the current task's process. Only from hooks running in a managed task's
 * context (never from mis_report, where "current" is the enforcer). */
static __always_inline void mis_kill_current(void)
{
	bpf_send_signal(MIS_SIGKILL);
	mis_stat_inc(MIS_STAT_KILL_SIGNALS);
}

#endif /* MIS_DEFCON_H */
