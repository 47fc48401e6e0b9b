/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The in-kernel file backend: BPF LSM hooks that decide the opens, execs, file changes and
 * signals of cgroups managed with MIS_CG_LSM_FILES, with the same policy and the same order of decision as the seccomp
 * supervisor's WorkloadPolicy.Explain (src/Mis.Enforcer/Policy/WorkloadPolicy.cs):
 *   1. inode rules (the seed's AddRule: dev, inode, syscall);
 *   2. with the exec allow-list, an exec of a file written during the run or without a name;
 *   3. the first file rule, in order, that applies to the operation and names the file by path
 *      (a concrete pattern exactly, a glob through mis_path_match.h) or by identity (the file is
 *      one such a rule matched by another name);
 *   4. an ELF program's interpreter (ld.so) is allowed when no rule named it;
 *   5. DEFCON 2 and 1 deny everything not explicitly allowed, DEFCON 3 every exec, the exec
 *      allow-list every exec; otherwise the policy's default.
 * The path is the kernel's own (d_path of the opened file, within the task's root; for the
 * path_* hooks, the dentry's names walked up to that root, mis_dentry_path): nothing is read from
 * user memory. Changes to the file tree are decided as writes, as the supervisor decides them
 * (SeccompSupervisor.Changes.cs): a new name (mkdir, mknod and every create of an open, symlink,
 * the name a link makes) on its path before it exists; unlink, rmdir, truncate(2), chmod and
 * chown on the object; a link on its source first, as an operation that gives it a new name.
 * What has no path hook, or a decision no hook can make, stays with the seccomp supervisor (the
 * launcher's filter still sends it): rename (a renamed directory moves every file below it),
 * utimes, xattrs, file attributes, Unix binds, O_TMPFILE and O_PATH opens, and openat2.
 * Signals to one process (task_kill) are decided on the task the kernel found: only the
 * workload's own cgroup may be signalled, as the supervisor allows.
 * What the path rules say of a path an open or exec meets is remembered per CPU
 * (mis_path_rules_remembered), since the same paths are opened again and again; what they said
 * of a regular file's one name is also kept on its inode (mis_open_memo), so opening it again
 * by that name needs neither its path nor a pass of the rules.
 * Every denial goes through mis_violation (mis_defcon.h), the state machine every deny point
 * uses; its event says MIS_DECIDED_LSM.
 */
#ifndef MIS_LSM_H
#define MIS_LSM_H

#include "mis_defcon.h"
#include "mis_path_match.h"

#define MIS_EPERM 1
#define MIS_FMODE_WRITE 0x2
#define MIS_FMODE_EXEC 0x20   /* FMODE_EXEC in f_mode, __FMODE_EXEC in f_flags */
#define MIS_O_CREAT 0100
#define MIS_O_TRUNC 01000
#define MIS_FMODE_CREATED 0x100000 /* this open made the file: path_mknod decided it */
#define MIS_SYS_TRUNCATE 76
#define MIS_PROC_SUPER_MAGIC 0x9fa0

/* Where a task is in an exec, for telling the program's interpreter from the program. */
enum mis_exec_phase {
	MIS_EXEC_NONE = 0,   /* reset at every execve/execveat entry (sys_enter) */
	MIS_EXEC_ELF = 1,    /* bprm_check saw an ELF: the next exec-open is its interpreter */
	MIS_EXEC_OTHER = 2,  /* bprm_check saw a script (or another format): the next is a program */
};

struct mis_exec_phase_state {
	__u32 phase;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct mis_exec_phase_state);
} mis_exec_phase SEC(".maps");

/*
 * What the path rules said of a regular file with one name when it was last opened, kept on its
 * inode (so it goes with the inode, never to another file that reuses its memory) and taken
 * again only for the same name: the same dentry on the same mount, seen from the same root,
 * with no rename and no mount change anywhere on the host since (the kernel's rename_lock and
 * mount_lock sequences, which every d_move and every change of the mount tree bumps), under the
 * same generation of the same policy's rules. A file with other names (a hard link) or none
 * (unlinked) is not kept: which name it is opened by is the question. Only the path rules are
 * kept; inode rules, objects followed by identity, the level and the default are decided anew.
 */
struct mis_open_name {
	__u64 dentry;      /* compared, never followed */
	__u64 mnt;
	__u64 root_dentry; /* the opening task's root */
	__u64 root_mnt;
	__u32 rename_seq;
	__u32 mount_seq;
	__u32 policy_id;
	__u32 generation;
};

struct mis_open_memo {
	__u64 seq;         /* odd while written, as mis_path_rules_slot */
	struct mis_open_name name;
	__u32 concrete;    /* an exact rule names the path */
	__u32 pad;
	struct mis_rule_set rules;
};

struct {
	__uint(type, BPF_MAP_TYPE_INODE_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct mis_open_memo);
} mis_open_memos SEC(".maps");

/* Typeless and weak: a kernel whose kallsyms does not list them (no CONFIG_KALLSYMS_ALL) leaves
 * both at 0, and then nothing is kept. */
extern const void rename_lock __ksym __weak;
extern const void mount_lock __ksym __weak;

#define MIS_S_IFMT  0170000
#define MIS_S_IFREG 0100000

/* The exact-path key under construction (larger than a hook's stack allows). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mis_exact_key);
} mis_exact_scratch SEC(".maps");

/* A path under construction by mis_dentry_path: written backwards from the end of the first
 * half; the second half only keeps the verifier's bounds (a name is copied at an offset below
 * MIS_PATH_MAX, of a length below it). */
struct mis_path_build {
	char buf[2 * MIS_PATH_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mis_path_build);
} mis_build_scratch SEC(".maps");

/* The struct mount a vfsmount is embedded in. */
static __always_inline struct mount *mis_mount_of(struct vfsmount *mnt)
{
	return (struct mount *)((void *)mnt - bpf_core_field_offset(struct mount, mnt));
}

/* One step of the walk from a dentry up to the task's root (bpf_loop's context). */
struct mis_path_walk {
	__u64 dentry;      /* struct dentry *: the component to prepend next */
	__u64 mnt;         /* struct mount * it is on */
	__u64 root_dentry; /* the task's root */
	__u64 root_mnt;    /* struct mount * */
	__u32 off;         /* the path so far starts at buf[off] */
	__u32 done;
};

static long mis_walk_step(__u64 i, void *data)
{
	struct mis_path_walk *w = data;
	struct dentry *d = (struct dentry *)w->dentry, *parent;
	struct mount *m = (struct mount *)w->mnt, *up;
	struct mis_path_build *out;
	struct qstr name;
	__u32 zero = 0, len, off = w->off;

	if (w->dentry == w->root_dentry && w->mnt == w->root_mnt) {
		w->done = 1;
		return 1;
	}
	parent = BPF_CORE_READ(d, d_parent);
	if (d == BPF_CORE_READ(m, mnt.mnt_root) || d == parent) {
		/* The top of a mount: go on from where it is mounted, or stop at the namespace's root. */
		up = BPF_CORE_READ(m, mnt_parent);
		if (up == m || !up) {
			w->done = 1;
			return 1;
		}
		w->dentry = (__u64)BPF_CORE_READ(m, mnt_mountpoint);
		w->mnt = (__u64)up;
		return 0;
	}
	name = BPF_CORE_READ(d, d_name);
	len = name.len;
	out = bpf_map_lookup_elem(&mis_build_scratch, &zero);
	if (!out || len + 1 > off)
		return 1; /* longer than MIS_PATH_MAX: not done */
	off -= len;
	bpf_probe_read_kernel(&out->buf[off & (MIS_PATH_MAX - 1)], len & (MIS_PATH_MAX - 1), name.name);
	off -= 1;
	out->buf[off & (MIS_PATH_MAX - 1)] = '/';
	w->off = off;
	w->dentry = (__u64)parent;
	return 0;
}

/*
 * The path of `dentry` on `mnt` as d_path writes it (within the task's root), into `b`; what
 * bpf_d_path does for the hooks that may call it (file_open), for the path_* hooks, which get a
 * dentry and may not. A negative dentry (a name about to be made) has its name and parent too.
 * Returns 0, or -1 when the path is longer than MIS_PATH_MAX.
 */
static __always_inline int mis_dentry_path(struct mis_path_buf *b, struct vfsmount *mnt, struct dentry *dentry)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct mis_path_walk w = {
		.dentry = (__u64)dentry,
		.mnt = (__u64)mis_mount_of(mnt),
		.root_dentry = (__u64)BPF_CORE_READ(task, fs, root.dentry),
		.root_mnt = (__u64)mis_mount_of(BPF_CORE_READ(task, fs, root.mnt)),
		.off = MIS_PATH_MAX - 1,
	};
	struct mis_path_build *out;
	__u32 zero = 0;

	out = bpf_map_lookup_elem(&mis_build_scratch, &zero);
	if (!out)
		return -1;
	out->buf[MIS_PATH_MAX - 1] = 0;
	bpf_loop(MIS_PATH_MAX, mis_walk_step, &w, 0);
	if (!w.done)
		return -1;
	if (w.off == MIS_PATH_MAX - 1) { /* the root itself */
		b->path[0] = '/';
		b->path[1] = 0;
		return 0;
	}
	bpf_probe_read_kernel_str(b->path, MIS_PATH_MAX, &out->buf[w.off & (MIS_PATH_MAX - 1)]);
	return 0;
}

/* Called by sys_enter at execve/execveat: a new exec starts with its program, never with an
 * interpreter, whatever an earlier exec that failed half-way left behind. */
static __always_inline void mis_lsm_exec_begins(void)
{
	struct mis_exec_phase_state *st;

	st = bpf_task_storage_get(&mis_exec_phase, bpf_get_current_task_btf(), 0, 0);
	if (st)
		st->phase = MIS_EXEC_NONE;
}

/* The current task's cgroup state when its files are decided here (MIS_CG_LSM_FILES), else NULL. */
static __always_inline struct mis_cgroup_state *mis_lsm_cgroup(void)
{
	struct mis_cgroup_state *s;
	__u64 cgroup_id;

	if (bpf_current_task_under_cgroup(&mis_root, 0) != 1)
		return NULL;
	cgroup_id = mis_current_cgroup_id();
	s = bpf_map_lookup_elem(&mis_cgroups, &cgroup_id);
	return s && (READ_ONCE(s->flags) & MIS_CG_LSM_FILES) ? s : NULL;
}

/* Renamed in 6.6 (__i_ctime) and split in 6.11 (i_ctime_sec, i_ctime_nsec). */
struct inode___v61 {
	struct timespec64 i_ctime;
} __attribute__((preserve_access_index));

struct inode___v66 {
	struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));

static __always_inline __u64 mis_ctime_ns(struct inode *inode)
{
	if (bpf_core_field_exists(inode->i_ctime_sec))
		return (__u64)BPF_CORE_READ(inode, i_ctime_sec) * 1000000000ULL + BPF_CORE_READ(inode, i_ctime_nsec);
	if (bpf_core_field_exists(((struct inode___v66 *)inode)->__i_ctime)) {
		struct inode___v66 *i = (void *)inode;

		return (__u64)BPF_CORE_READ(i, __i_ctime.tv_sec) * 1000000000ULL + BPF_CORE_READ(i, __i_ctime.tv_nsec);
	}
	struct inode___v61 *old = (void *)inode;

	return (__u64)BPF_CORE_READ(old, i_ctime.tv_sec) * 1000000000ULL + BPF_CORE_READ(old, i_ctime.tv_nsec);
}

/* Index of the lowest set bit of x (x != 0). */
static __always_inline __u32 mis_lowest_bit(__u64 x)
{
	__u32 n = 0;

	if (!(x & 0xffffffffULL)) { n += 32; x >>= 32; }
	if (!(x & 0xffffULL)) { n += 16; x >>= 16; }
	if (!(x & 0xffULL)) { n += 8; x >>= 8; }
	if (!(x & 0xfULL)) { n += 4; x >>= 4; }
	if (!(x & 0x3ULL)) { n += 2; x >>= 2; }
	if (!(x & 0x1ULL))
		n += 1;
	return n;
}

/* The syscall the current task is in (its orig_ax), 0 when not known. */
static __always_inline __u32 mis_current_syscall(void)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

	return regs ? (__u32)BPF_CORE_READ(regs, orig_ax) : 0;
}

/* The name of the signal syscall the current task is in, as the supervisor names it, into `out`. */
static __always_inline void mis_signal_syscall_name(char *out)
{
	switch (mis_current_syscall()) {
	case 62: __builtin_memcpy(out, "kill", 5); break;
	case 200: __builtin_memcpy(out, "tkill", 6); break;
	case 234: __builtin_memcpy(out, "tgkill", 7); break;
	case 129: __builtin_memcpy(out, "rt_sigqueueinfo", 16); break;
	case 297: __builtin_memcpy(out, "rt_tgsigqueueinfo", 18); break;
	default: __builtin_memcpy(out, "signal", 7); break;
	}
}

/* A hash of a NUL-padded path. Every word is read and no branch taken but the loop's own, which
 * keeps the verifier's count of paths through the hook where it was. */
static __always_inline __u32 mis_path_slot(const struct mis_exact_key *key)
{
	__u64 h = 0x9e3779b97f4a7c15ULL;

#pragma clang loop unroll(disable)
	for (int i = 0; i < MIS_PATH_MAX / 8; i++) {
		h = (h ^ *(const __u64 *)&key->path[i * 8]) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	return (__u32)h & (MIS_PATH_RULES_SLOTS - 1);
}

/* Whether two NUL-padded paths are the same bytes (without a branch, as above). */
static __always_inline bool mis_same_path(const char *a, const char *b)
{
	__u64 differ = 0;

#pragma clang loop unroll(disable)
	for (int i = 0; i < MIS_PATH_MAX / 8; i++)
		differ |= *(const __u64 *)&a[i * 8] ^ *(const __u64 *)&b[i * 8];
	return !differ;
}

/* Every rule of policy `policy_id` that names the path in `key` (NUL-padded; `b` holds the same
 * path), into `rules`: exact rules, then globs. Returns whether an exact rule names it. */
static __always_inline bool mis_path_rules_now(__u32 policy_id, const struct mis_exact_key *key, const struct mis_path_buf *b,
					       struct mis_rule_set *rules)
{
	struct mis_rule_set *exact = bpf_map_lookup_elem(&mis_exact_paths, key);

	if (exact)
		*rules = *exact;
	mis_glob_match_all(policy_id, b, rules->bits);
	return exact != NULL;
}

/*
 * mis_path_rules_now, remembered in this CPU's slot of mis_path_rules under the policy's
 * `generation`: a path met again costs a compare, not a pass of every glob. A slot is read
 * between two reads of its sequence and written under an odd one, so a hook preempted on this
 * CPU by another never takes half of one path's entry for another's. A global function, checked
 * by the verifier once rather than on every path through the hook, so it takes the path from
 * the scratch maps (where mis_path_rules_of put it) and not as an argument: a global function's
 * pointer argument is memory that no helper takes as a map key.
 */
__attribute__((noinline)) int mis_path_rules_remembered(__u32 policy_id, __u32 generation, struct mis_rule_set *rules)
{
	struct mis_path_rules_slot *slot;
	struct mis_exact_key *key;
	struct mis_path_buf *b;
	bool concrete;
	__u32 index = 0;
	__u64 seq;

	key = bpf_map_lookup_elem(&mis_exact_scratch, &index);
	b = bpf_map_lookup_elem(&mis_path_scratch, &index);
	if (!key || !b || !rules)
		return 0;
	index = mis_path_slot(key);
	slot = bpf_map_lookup_elem(&mis_path_rules, &index);
	if (!slot)
		return mis_path_rules_now(policy_id, key, b, rules);

	seq = READ_ONCE(slot->seq);
	if (!(seq & 1) && slot->policy_id == policy_id && slot->generation == generation &&
	    mis_same_path(slot->path, key->path)) {
		*rules = slot->rules;
		concrete = slot->concrete;
		barrier();
		if (READ_ONCE(slot->seq) == seq)
			return concrete;
		__builtin_memset(rules, 0, sizeof(*rules));
	}

	concrete = mis_path_rules_now(policy_id, key, b, rules);
	/* Taken only from an even sequence: a writer this one preempted keeps the slot. */
	seq = READ_ONCE(slot->seq);
	if (!(seq & 1) && __sync_val_compare_and_swap(&slot->seq, seq, seq + 1) == seq) {
		slot->policy_id = policy_id;
		slot->generation = generation;
		slot->concrete = concrete;
		slot->rules = *rules;
		__builtin_memcpy(slot->path, key->path, MIS_PATH_MAX);
		barrier();
		WRITE_ONCE(slot->seq, seq + 2);
	}
	return concrete;
}

/* What the policy's path rules say of the path in `b`, into `rules`: exact rules, then globs.
 * Returns whether an exact rule names it. `remember`: kept for the next time
 * (mis_path_rules_remembered; opens and execs, which meet the same paths again and again). */
static __always_inline bool mis_path_rules_of(__u32 policy_id, __u32 generation, bool remember, const struct mis_path_buf *b,
					   struct mis_rule_set *rules)
{
	struct mis_exact_key *ekey;
	__u32 zero = 0;

	ekey = bpf_map_lookup_elem(&mis_exact_scratch, &zero);
	if (!ekey)
		return false; /* never: a one-entry per-CPU array */
	/* The key is the whole buffer: NUL-padded, as user space wrote it (d_path leaves the bytes
	 * after the NUL as they were). */
	ekey->policy_id = policy_id;
	__builtin_memset(ekey->path, 0, MIS_PATH_MAX);
	bpf_probe_read_kernel_str(ekey->path, MIS_PATH_MAX, b->path);
	return remember ? mis_path_rules_remembered(policy_id, generation, rules)
			: mis_path_rules_now(policy_id, ekey, b, rules);
}

/* The policy's verdict on (op, file), given what its path rules say of the path (`path_rules`, and
 * `concrete` when an exact rule names it); 1-based op: MIS_OP_FILE_READ, _WRITE, _EXEC. `inode`
 * is NULL for a name with nothing there yet; `new_name`: the operation gives the file another
 * name (the source of a link), so a rule that matches it by path must follow it by identity.
 * `b` holds the path for an exec. */
static __always_inline __u32 mis_lsm_decide(const struct mis_cgroup_state *s, const struct mis_file_policy *fp, __u32 op,
					    bool interpreter, bool new_name, const struct mis_path_buf *b,
					    const struct mis_rule_set *path_rules, bool concrete, struct inode *inode, __u32 level)
{
	__u32 policy_id = s->policy_id;
	struct mis_object_key okey = { .policy_id = policy_id };
	struct mis_inode_key ikey = { .policy_id = policy_id };
	struct mis_rule_set *named = NULL;
	const struct mis_rule_set *applies;
	__u32 *inode_action = NULL;
	bool matched;

	/* 1. inode rules, by the syscall that asked. */
	if (inode) {
		okey.dev = ikey.dev = inode->i_sb->s_dev;
		okey.ino = ikey.ino = inode->i_ino;
	}
	if (inode && fp->inode_rules) {
		ikey.syscall = mis_current_syscall();
		inode_action = bpf_map_lookup_elem(&mis_inode_rules, &ikey);
		if (!inode_action) {
			ikey.syscall = 0;
			inode_action = bpf_map_lookup_elem(&mis_inode_rules, &ikey);
		}
		if (inode_action)
			return *inode_action;
	}

	/* 2. the exec allow-list refuses what was written during the run, or has no name. */
	if (op == MIS_OP_EXEC && fp->exec_allow_list && inode &&
	    (!inode->i_nlink || mis_ctime_ns(inode) >= s->started_realtime_ns ||
	     (b->path[0] == '/' && b->path[1] == 'm' && b->path[2] == 'e' && b->path[3] == 'm' &&
	      b->path[4] == 'f' && b->path[5] == 'd' && b->path[6] == ':')))
		return MIS_DECISION_DENY;

	/* 3. file rules: by path (exact, then globs), then by identity. */
	matched = path_rules->bits[0] | path_rules->bits[1] | path_rules->bits[2] | path_rules->bits[3];
	if (inode) {
		/* A file a rule matches by path that has other names, is given one now, or that an
		 * exact rule names (it may have been replaced) is followed by identity, so no other
		 * name of it escapes the rule. */
		if (matched && (inode->i_nlink > 1 || concrete || new_name)) {
			struct mis_rule_set merged = *path_rules, *old = bpf_map_lookup_elem(&mis_file_objects, &okey);

			if (old) {
				merged.bits[0] |= old->bits[0];
				merged.bits[1] |= old->bits[1];
				merged.bits[2] |= old->bits[2];
				merged.bits[3] |= old->bits[3];
			}
			/* Full: a new name would be unprotected, so the operation that makes it is refused. */
			if ((!old || merged.bits[0] != old->bits[0] || merged.bits[1] != old->bits[1] ||
			     merged.bits[2] != old->bits[2] || merged.bits[3] != old->bits[3]) &&
			    bpf_map_update_elem(&mis_file_objects, &okey, &merged, BPF_ANY) && new_name)
				return MIS_DECISION_DENY;
		}
		named = bpf_map_lookup_elem(&mis_file_objects, &okey);
	}
	applies = op == MIS_OP_EXEC ? &fp->applies_exec : op == MIS_OP_FILE_WRITE ? &fp->applies_write : &fp->applies_read;
	for (int w = 0; w < 4; w++) {
		__u64 candidates = (path_rules->bits[w] | (named ? named->bits[w] : 0)) & applies->bits[w];

		if (candidates)
			return fp->action[(w * 64 + mis_lowest_bit(candidates)) & MIS_FILE_RULES_MAX];
	}

	/* 4. the interpreter of a program that was decided itself. */
	if (interpreter)
		return MIS_DECISION_ALLOW;
	/* 5. the level, then the default. */
	if (level <= 2)
		return MIS_DECISION_DENY;
	if (op == MIS_OP_EXEC && (level == 3 || fp->exec_allow_list))
		return MIS_DECISION_DENY;
	return fp->default_action;
}

/*
 * Another cgroup's process, reached through /proc: a write to any of its entries, or its memory
 * (mem) at all, is refused, as the supervisor's ProcRefusal refuses it. The kernel's own check
 * (ptrace access) lets a process reach another with the same credentials: a second workload of
 * the same user, whatever its cgroup. The task is the one the proc inode was made for, not a
 * pid read from the path.
 */
static __always_inline bool mis_proc_refused(struct inode *inode, struct dentry *dentry, __u32 op)
{
	struct hlist_node *first;
	struct task_struct *t;
	struct proc_inode *pi;
	struct pid *pid;
	struct qstr name;
	char entry[4] = {};

	if (!inode || inode->i_sb->s_magic != MIS_PROC_SUPER_MAGIC)
		return false;
	if (op != MIS_OP_FILE_WRITE) {
		name = BPF_CORE_READ(dentry, d_name);
		if (name.len != 3)
			return false;
		bpf_probe_read_kernel(entry, 3, name.name);
		if (entry[0] != 'm' || entry[1] != 'e' || entry[2] != 'm')
			return false;
	}
	pi = (struct proc_inode *)((void *)inode - bpf_core_field_offset(struct proc_inode, vfs_inode));
	pid = BPF_CORE_READ(pi, pid);
	if (!pid)
		return false; /* not a process's entry */
	first = BPF_CORE_READ(pid, tasks[PIDTYPE_PID].first);
	if (!first)
		return false; /* the process is gone: the kernel refuses the open itself */
	t = (struct task_struct *)((void *)first - bpf_core_field_offset(struct task_struct, pid_links));
	return BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id) != bpf_get_current_cgroup_id();
}

/* The level a hook decides at: DEFCON 5 while no violation is counted (nothing to decay, so the
 * clock is not read: `now` stays 0), else the level after decay at `now`. */
static __always_inline __u32 mis_lsm_level(struct mis_cgroup_state *s, const struct mis_actor *actor, __u64 *now)
{
	if (!READ_ONCE(s->violations))
		return MIS_DEFCON_NORMAL;
	*now = bpf_ktime_get_ns();
	mis_decay(s, *now, actor);
	return mis_level(s);
}

/* The hook's answer to `verdict` once the path is in `b`: allowed, traced, or refused and counted. */
static __always_inline int mis_lsm_answer(struct mis_cgroup_state *s, __u32 verdict, __u32 op, const struct mis_path_buf *b,
					  const struct mis_actor *actor, __u64 now)
{
	struct mis_event *e;

	if (verdict == MIS_DECISION_ALLOW)
		return 0;
	if (!now)
		now = bpf_ktime_get_ns();
	if (verdict == MIS_DECISION_TRACE) {
		e = mis_trace_event(s, now, actor, op);
		if (e) {
			e->value = MIS_DECIDED_LSM;
			bpf_probe_read_kernel_str(e->target, sizeof(e->target), b->path);
			bpf_ringbuf_submit(e, 0);
		}
		return 0;
	}
	e = mis_event_reserve_full();
	if (e) {
		e->value = MIS_DECIDED_LSM;
		bpf_probe_read_kernel_str(e->target, sizeof(e->target), b->path);
	}
	mis_violation(s, now, actor, op, e);
	return -MIS_EPERM;
}

/* The rename and mount sequences now, when neither is being written (a memo then cannot be trusted). */
static __always_inline bool mis_path_epoch(__u32 *rename_seq, __u32 *mount_seq)
{
	if (!&rename_lock || !&mount_lock)
		return false;
	/* Both seqlocks begin with their sequence. */
	if (bpf_probe_read_kernel(rename_seq, sizeof(*rename_seq), &rename_lock) ||
	    bpf_probe_read_kernel(mount_seq, sizeof(*mount_seq), &mount_lock))
		return false;
	return !(*rename_seq & 1) && !(*mount_seq & 1);
}

/* The memo for `file` when it may have one: a regular file with exactly one name, opened when no
 * rename or mount change is under way; else NULL. `name` gets what the memo must match. */
static __always_inline struct mis_open_memo *mis_open_memo_of(struct file *file, const struct mis_cgroup_state *s,
							     const struct mis_file_policy *fp, struct mis_open_name *name)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct inode *inode = file->f_inode;

	if ((inode->i_mode & MIS_S_IFMT) != MIS_S_IFREG || inode->i_nlink != 1 ||
	    !mis_path_epoch(&name->rename_seq, &name->mount_seq))
		return NULL;
	name->dentry = (__u64)file->f_path.dentry;
	name->mnt = (__u64)file->f_path.mnt;
	name->root_dentry = (__u64)task->fs->root.dentry;
	name->root_mnt = (__u64)task->fs->root.mnt;
	name->policy_id = s->policy_id;
	name->generation = fp->generation;
	return bpf_inode_storage_get(&mis_open_memos, inode, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
}

/* What the memo says of the path, into `rules` and `concrete`, when it was kept for `name` and is
 * read whole (between two reads of its sequence, as mis_path_rules_remembered reads a slot). */
static __always_inline bool mis_open_memo_read(struct mis_open_memo *m, const struct mis_open_name *name,
					       struct mis_rule_set *rules, bool *concrete)
{
	__u64 seq = READ_ONCE(m->seq);

	if ((seq & 1) || m->name.dentry != name->dentry || m->name.mnt != name->mnt ||
	    m->name.root_dentry != name->root_dentry || m->name.root_mnt != name->root_mnt ||
	    m->name.rename_seq != name->rename_seq || m->name.mount_seq != name->mount_seq ||
	    m->name.policy_id != name->policy_id || m->name.generation != name->generation)
		return false;
	*rules = m->rules;
	*concrete = m->concrete;
	barrier();
	return READ_ONCE(m->seq) == seq;
}

/* Keeps what the path rules said of `name` in the memo, unless another CPU is writing it. */
static __always_inline void mis_open_memo_write(struct mis_open_memo *m, const struct mis_open_name *name,
						const struct mis_rule_set *rules, bool concrete)
{
	__u64 seq = READ_ONCE(m->seq);

	if ((seq & 1) || __sync_val_compare_and_swap(&m->seq, seq, seq + 1) != seq)
		return;
	m->name = *name;
	m->concrete = concrete;
	m->rules = *rules;
	barrier();
	WRITE_ONCE(m->seq, seq + 2);
}

/* The hook's answer for one open or exec of `file` by a task of a managed cgroup. */
static __always_inline int mis_lsm_file(struct file *file)
{
	struct mis_exec_phase_state *phase;
	struct mis_open_memo *memo = NULL;
	struct mis_open_name name = {};
	const struct mis_file_policy *fp;
	struct mis_rule_set rules = {};
	struct mis_cgroup_state *s;
	struct mis_actor actor;
	struct mis_path_buf *b;
	__u32 op, level, verdict, zero = 0;
	bool interpreter = false, concrete = false, have_path = false;
	__u64 now = 0;

	s = mis_lsm_cgroup();
	if (!s)
		return 0;
	/* This open made the file: path_mknod decided it as a new name already. */
	if (file->f_mode & MIS_FMODE_CREATED)
		return 0;
	fp = bpf_map_lookup_elem(&mis_file_policies, &s->policy_id);
	b = bpf_map_lookup_elem(&mis_path_scratch, &zero);
	if (!fp || !b)
		return -MIS_EPERM; /* a managed cgroup without its rules: refuse, never guess */

	if ((file->f_mode & MIS_FMODE_EXEC) || (file->f_flags & MIS_FMODE_EXEC)) {
		op = MIS_OP_EXEC;
		phase = bpf_task_storage_get(&mis_exec_phase, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		interpreter = phase && phase->phase == MIS_EXEC_ELF;
		if (phase)
			phase->phase = MIS_EXEC_NONE;
	} else if ((file->f_mode & MIS_FMODE_WRITE) || (file->f_flags & (MIS_O_TRUNC | MIS_O_CREAT))) {
		/* O_CREAT of a file that is there is a write, as for the supervisor. */
		op = MIS_OP_FILE_WRITE;
	} else {
		op = MIS_OP_FILE_READ;
	}

	mis_actor_current(&actor);
	level = mis_lsm_level(s, &actor, &now);
	if (mis_proc_refused(file->f_inode, file->f_path.dentry, op)) {
		verdict = MIS_DECISION_DENY;
	} else {
		/* An exec's path is always read: the exec allow-list looks at it. */
		if (op != MIS_OP_EXEC)
			memo = mis_open_memo_of(file, s, fp, &name);
		if (!memo || !mis_open_memo_read(memo, &name, &rules, &concrete)) {
			if (bpf_d_path((struct path *)&file->f_path, b->path, MIS_PATH_MAX) < 0)
				return -MIS_EPERM; /* longer than MIS_PATH_MAX: no rule could be checked */
			have_path = true;
			concrete = mis_path_rules_of(s->policy_id, fp->generation, true, b, &rules);
			if (memo)
				mis_open_memo_write(memo, &name, &rules, concrete);
		}
		verdict = mis_lsm_decide(s, fp, op, interpreter, false, b, &rules, concrete, file->f_inode, level);
	}
	/* The event names the path. */
	if (verdict != MIS_DECISION_ALLOW && !have_path && bpf_d_path((struct path *)&file->f_path, b->path, MIS_PATH_MAX) < 0)
		return -MIS_EPERM;
	return mis_lsm_answer(s, verdict, op, b, &actor, now);
}

/* The hook's answer for one change of the file tree at `dentry` on `mnt`, decided as a write:
 * on the file there (NULL inode: a name about to be made), with `new_name` when the operation
 * gives that file another name. */
static __always_inline int mis_lsm_change(struct vfsmount *mnt, struct dentry *dentry, bool new_name)
{
	const struct mis_file_policy *fp;
	struct mis_rule_set rules = {};
	struct mis_cgroup_state *s;
	struct mis_actor actor;
	struct mis_path_buf *b;
	__u32 level, verdict, zero = 0;
	bool concrete;
	__u64 now = 0;

	s = mis_lsm_cgroup();
	if (!s)
		return 0;
	fp = bpf_map_lookup_elem(&mis_file_policies, &s->policy_id);
	b = bpf_map_lookup_elem(&mis_path_scratch, &zero);
	if (!fp || !b)
		return -MIS_EPERM;
	if (mis_dentry_path(b, mnt, dentry))
		return -MIS_EPERM; /* longer than MIS_PATH_MAX: no rule could be checked */
	mis_actor_current(&actor);
	level = mis_lsm_level(s, &actor, &now);
	if (mis_proc_refused(dentry->d_inode, dentry, MIS_OP_FILE_WRITE)) {
		verdict = MIS_DECISION_DENY;
	} else {
		concrete = mis_path_rules_of(s->policy_id, fp->generation, false, b, &rules);
		verdict = mis_lsm_decide(s, fp, MIS_OP_FILE_WRITE, false, new_name, b, &rules, concrete, dentry->d_inode, level);
	}
	return mis_lsm_answer(s, verdict, MIS_OP_FILE_WRITE, b, &actor, now);
}

#endif /* MIS_LSM_H */
