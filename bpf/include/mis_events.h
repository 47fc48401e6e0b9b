/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Ring-buffer helpers. A full ring buffer loses the event but never silently: every failed
 * reserve increments the per-CPU MIS_STAT_RINGBUF_DROPS counter, which user space exports.
 */
#ifndef MIS_EVENTS_H
#define MIS_EVENTS_H

#include "mis_maps.h"

/* Who did it: the current task in the hooks, the reported task in the mis_report program
 * (where "current" is the enforcer itself). For the current task the comm is read only when
 * an event is written, not on every syscall. */
struct mis_actor {
	__u32 pid;
	__u32 tid;
	__u32 current; /* 1: comm comes from bpf_get_current_comm() when needed */
	char comm[16];
};

static __always_inline void mis_actor_current(struct mis_actor *a)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	a->pid = pid_tgid >> 32;
	a->tid = (__u32)pid_tgid;
	a->current = 1;
}

static __always_inline void mis_stat_add(__u32 stat, __u64 n)
{
	__u64 *counter = bpf_map_lookup_elem(&mis_stats, &stat);

	/* Atomic although the slot is per CPU: mis_report (a sleepable syscall program) can be
	 * preempted on its CPU by a tracing program that bumps the same slot. */
	if (counter)
		__sync_fetch_and_add(counter, n);
}

static __always_inline void mis_stat_inc(__u32 stat)
{
	mis_stat_add(stat, 1);
}

/* Reserves a record of `size` bytes (MIS_EVENT_HEADER_SIZE or sizeof(struct mis_event)). */
static __always_inline struct mis_event *mis_event_reserve(__u64 size)
{
	struct mis_event *e = bpf_ringbuf_reserve(&mis_events, size, 0);

	if (!e)
		mis_stat_inc(MIS_STAT_RINGBUF_DROPS);
	return e;
}

/* A full record with an empty target, for the caller to fill before the state machine runs. */
static __always_inline struct mis_event *mis_event_reserve_full(void)
{
	struct mis_event *e = mis_event_reserve(sizeof(struct mis_event));

	if (e) {
		e->target[0] = 0;
		e->value = MIS_DECIDED_HOOK; /* the deny point, for the caller to set */
	}
	return e;
}

/* Fills every header field but value (a reserved record is not zeroed: the caller sets it). */
static __always_inline void mis_event_fill(struct mis_event *e, __u32 type, __u64 now,
					   const struct mis_cgroup_state *s, const struct mis_actor *a,
					   __u64 violations, __u32 prev_defcon, __u32 defcon)
{
	e->timestamp_ns = now;
	e->cgroup_id = s->cgroup_id;
	e->violations = violations;
	e->type = type;
	e->pid = a->pid;
	e->tid = a->tid;
	e->op = MIS_OP_NONE;
	e->decision = MIS_DECISION_ALLOW;
	e->defcon = defcon;
	e->prev_defcon = prev_defcon;
	e->flags = s->flags;
	if (a->current)
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	else
		__builtin_memcpy(e->comm, a->comm, sizeof(e->comm));
}

/* A header-only record (DEFCON, KILL, SYSCALL, SLOWDOWN_TOTAL). */
static __always_inline void mis_emit_small(__u32 type, __u64 now, const struct mis_cgroup_state *s,
					   const struct mis_actor *a, __u64 violations,
					   __u32 prev_defcon, __u32 defcon, __u64 value)
{
	struct mis_event *e = mis_event_reserve(MIS_EVENT_HEADER_SIZE);

	if (!e)
		return;
	mis_event_fill(e, type, now, s, a, violations, prev_defcon, defcon);
	e->value = value;
	bpf_ringbuf_submit(e, 0);
}

#endif /* MIS_EVENTS_H */
