/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The enforcer's maps. Included by exactly one .bpf.c (enforcer.bpf.c): every program that
 * shares state must live in the same object, so they see the same maps.
 */
#ifndef MIS_MAPS_H
#define MIS_MAPS_H

#include "mis_shared.h"

/* Plain loads and stores of fields other CPUs change concurrently, never torn or cached. */
#ifndef READ_ONCE
#define READ_ONCE(x) (*(const volatile typeof(x) *)&(x))
#endif
#ifndef WRITE_ONCE
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))
#endif

#define MIS_MAX_CGROUPS 4096
#define MIS_MAX_NET_RULES 16384
#define MIS_MAX_EXEC_DENY 16384
#define MIS_MAX_UNIX_RULES 4096
#define MIS_MAX_UNIX_OWN 16384
#define MIS_MAX_GLOB_WORDS 4096

/* Managed cgroups: cgroup id -> state. Only user space inserts and deletes (the hooks only look
 * up and update fields in place), so nothing allocates in a hook. Not preallocated on purpose: a
 * deleted element is freed after an RCU grace period, so a hook still holding it while the
 * cgroup is unmanaged writes to memory no other cgroup can have been given yet. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MIS_MAX_CGROUPS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct mis_cgroup_state);
} mis_cgroups SEC(".maps");

/* Each managed cgroup's DEFCON level as one word (see MIS_VIEW_* in mis_shared.h), indexed by
 * mis_cgroup_state.view_slot; user space maps it read-only and reads it with a load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MIS_MAX_CGROUPS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} mis_defcon_view SEC(".maps");

/* Slot 0 holds MIS's own cgroup ("<cgroup2 mount>/mis"). Every managed cgroup lives below
 * it, so bpf_current_task_under_cgroup() is a first filter that rejects unmanaged tasks
 * with a pointer comparison instead of a hash lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} mis_root SEC(".maps");

/* The current task's cgroup v2 id, the value bpf_get_current_cgroup_id() returns, loaded through
 * the task's BTF pointers. The helper does the same loads between rcu_read_lock() and
 * rcu_read_unlock(), calls a hook already inside an RCU read section does not need, and where
 * every kernel return goes through a mitigation thunk (SRSO's safe RET on this workplace's EPYC)
 * calls are dear: measured in sys_enter, 37 ns for the helper against 23 ns for these loads.
 * Tracing and LSM programs only: cgroup programs may not walk task pointers and keep the helper. */
static __always_inline __u64 mis_current_cgroup_id(void)
{
	struct task_struct *task = bpf_get_current_task_btf();

	return task->cgroups->dfl_cgrp->kn->id;
}

/* Events for user space; the size is set by the loader before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} mis_events SEC(".maps");

/* enum mis_stat counters, per CPU so counting never contends. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MIS_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} mis_stats SEC(".maps");

/* Network rules (see struct mis_net_key). LPM tries must not be preallocated. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MIS_MAX_NET_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mis_net_key);
	__type(value, struct mis_net_value);
} mis_net_rules SEC(".maps");

/* Unix socket rules: (policy id, name) -> action (see struct mis_unix_key). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MIS_MAX_UNIX_RULES);
	__type(key, struct mis_unix_key);
	__type(value, struct mis_net_value);
} mis_unix_rules SEC(".maps");

/* Names a managed cgroup's sockets listen on: (cgroup id, name) -> 1. Written by sys_enter at
 * listen(), removed by user space when the cgroup is unmanaged. LRU, so a workload binding names
 * without end evicts old names (its own or another cgroup's: a connect to an evicted name is then
 * denied) instead of failing inserts; preallocated, so nothing allocates in the hook. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MIS_MAX_UNIX_OWN);
	__type(key, struct mis_unix_key);
	__type(value, __u32);
} mis_unix_own SEC(".maps");

/* Exec backstop set: (dev, inode, policy) -> rule id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MIS_MAX_EXEC_DENY);
	__type(key, struct mis_exec_key);
	__type(value, __u32);
} mis_exec_deny SEC(".maps");

/* Execs the supervisor decided and continued, by tid (struct mis_exec_approval). LRU: an
 * approval whose exec never happened (it failed) is evicted, never leaked; one evicted before
 * its exec fails closed (the exec is killed). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MIS_MAX_EXEC_DENY);
	__type(key, __u32);
	__type(value, struct mis_exec_approval);
} mis_exec_approved SEC(".maps");

/* Compiled path globs of the policies' file rules (struct mis_glob_word, see mis_shared.h):
 * (policy id, word) -> that word's automaton. Written by user space when a policy is installed. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MIS_MAX_GLOB_WORDS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mis_glob_key);
	__type(value, struct mis_glob_word);
} mis_globs SEC(".maps");

/* The in-kernel file backend's policies (mis_shared.h): policy id -> file rules in order. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct mis_file_policy);
} mis_file_policies SEC(".maps");

/* Concrete patterns: (policy id, path) -> the rules that name exactly that path. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mis_exact_key);
	__type(value, struct mis_rule_set);
} mis_exact_paths SEC(".maps");

/* Paths matched against their policy's path rules, remembered per CPU (mis_lsm.h):
 * direct-mapped by a hash of the path, each slot holding the whole path, so a slot answers only
 * for the very path it was computed for; one overwritten is computed again, never wrong. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MIS_PATH_RULES_SLOTS);
	__type(key, __u32);
	__type(value, struct mis_path_rules_slot);
} mis_path_rules SEC(".maps");

/* Files rules follow by identity: written by user space (the files concrete patterns name) and
 * by the hooks (a file a rule matched by path that has other names). LRU would forget a
 * protected file, so it is a plain hash: when it is full, an open that would add one is denied. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mis_object_key);
	__type(value, struct mis_rule_set);
} mis_file_objects SEC(".maps");

/* The seed's inode rules: (dev, inode, policy, syscall) -> action. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mis_inode_key);
	__type(value, __u32);
} mis_inode_rules SEC(".maps");

/* Puts the contract types that are no map's key or value into the object's BTF, so the layout
 * test can find them by name and compare them with the C# mirrors. Never read. */
struct mis_event *mis_btf_event __attribute__((unused));
struct mis_report_ctx *mis_btf_report_ctx __attribute__((unused));
struct mis_glob_match_ctx *mis_btf_glob_match_ctx __attribute__((unused));
enum mis_op *mis_btf_op __attribute__((unused));
enum mis_decision *mis_btf_decision __attribute__((unused));
enum mis_cgroup_flags *mis_btf_cgroup_flags __attribute__((unused));
enum mis_event_type *mis_btf_event_type __attribute__((unused));
enum mis_command *mis_btf_command __attribute__((unused));
enum mis_decided_by *mis_btf_decided_by __attribute__((unused));
enum mis_result *mis_btf_result __attribute__((unused));
enum mis_stat *mis_btf_stat __attribute__((unused));

#endif /* MIS_MAPS_H */
