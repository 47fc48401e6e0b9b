/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The in-kernel file backend: BPF LSM hooks that decide the opens and execs of cgroups managed
 * with MIS_CG_LSM_FILES, with the same policy and the same order of decision as the seccomp
 * supervisor's WorkloadPolicy.Explain (src/Mis.Enforcer/Policy/WorkloadPolicy.cs):
 *   1. inode rules (the seed's AddRule: dev, inode, syscall);
 *   2. with the exec allow-list, an exec of a file written during the run or without a name;
 *   3. the first file rule, in order, that applies to the operation and names the file by path
 *      (a concrete pattern exactly, a glob through mis_path_match.h) or by identity (the file is
 *      one such a rule matched by another name);
 *   4. an ELF program's interpreter (ld.so) is allowed when no rule named it;
 *   5. DEFCON 2 and 1 deny everything not explicitly allowed, DEFCON 3 every exec, the exec
 *      allow-list every exec; otherwise the policy's default.
 * The path is the kernel's own (d_path of the opened file, within the task's root): nothing is
 * read from user memory. Opens that create (O_CREAT, O_TMPFILE), O_PATH opens and every change
 * to the file tree stay with the seccomp supervisor (the launcher's filter still sends them):
 * file_open runs after a create, too late to refuse it without leaving the file behind.
 * Every denial goes through mis_violation (mis_defcon.h), the state machine every deny point uses.
 */
#ifndef MIS_LSM_H
#define MIS_LSM_H

#include "mis_defcon.h"
#include "mis_path_match.h"

#define MIS_EPERM 1
#define MIS_FMODE_WRITE 0x2
#define MIS_FMODE_EXEC 0x20   /* FMODE_EXEC in f_mode, __FMODE_EXEC in f_flags */
#define MIS_O_TRUNC 01000

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

/* The exact-path key under construction (larger than a hook's stack allows). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mis_exact_key);
} mis_exact_scratch SEC(".maps");

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
	cgroup_id = bpf_get_current_cgroup_id();
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

/* The policy's verdict on (op, path, file); 1-based op: MIS_OP_FILE_READ, _WRITE, _EXEC. */
static __always_inline __u32 mis_lsm_decide(const struct mis_cgroup_state *s, const struct mis_file_policy *fp, __u32 op,
					    bool interpreter, struct mis_path_buf *b, struct inode *inode, __u64 dev, __u32 level)
{
	__u32 policy_id = s->policy_id;
	struct mis_object_key okey = { .dev = dev, .ino = inode->i_ino, .policy_id = policy_id };
	struct mis_inode_key ikey = { .dev = dev, .ino = inode->i_ino, .policy_id = policy_id };
	struct mis_rule_set by_path = {}, *named;
	const struct mis_rule_set *applies;
	struct mis_exact_key *ekey;
	struct mis_rule_set *exact;
	struct task_struct *task;
	struct pt_regs *regs;
	__u32 *inode_action, zero = 0;
	bool matched, concrete = false;

	/* 1. inode rules, by the syscall that asked. */
	task = bpf_get_current_task_btf();
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	ikey.syscall = regs ? (__u32)BPF_CORE_READ(regs, orig_ax) : 0;
	inode_action = bpf_map_lookup_elem(&mis_inode_rules, &ikey);
	if (!inode_action) {
		ikey.syscall = 0;
		inode_action = bpf_map_lookup_elem(&mis_inode_rules, &ikey);
	}
	if (inode_action)
		return *inode_action;

	/* 2. the exec allow-list refuses what was written during the run, or has no name. */
	if (op == MIS_OP_EXEC && fp->exec_allow_list &&
	    (!inode->i_nlink || mis_ctime_ns(inode) >= s->started_realtime_ns ||
	     (b->path[0] == '/' && b->path[1] == 'm' && b->path[2] == 'e' && b->path[3] == 'm' &&
	      b->path[4] == 'f' && b->path[5] == 'd' && b->path[6] == ':')))
		return MIS_DECISION_DENY;

	/* 3. file rules: by path (exact, then globs), then by identity. */
	ekey = bpf_map_lookup_elem(&mis_exact_scratch, &zero);
	if (ekey) {
		/* The key is the whole buffer: NUL-padded, as user space wrote it (d_path leaves the
		 * bytes after the NUL as they were). */
		ekey->policy_id = policy_id;
		__builtin_memset(ekey->path, 0, MIS_PATH_MAX);
		bpf_probe_read_kernel_str(ekey->path, MIS_PATH_MAX, b->path);
		exact = bpf_map_lookup_elem(&mis_exact_paths, ekey);
		if (exact) {
			by_path = *exact;
			concrete = true;
		}
	}
	mis_glob_match_all(policy_id, b, by_path.bits);
	matched = by_path.bits[0] | by_path.bits[1] | by_path.bits[2] | by_path.bits[3];
	/* A file a rule matches by path that has other names (or that an exact rule names: it may
	 * have been replaced) is followed by identity, so no other name of it escapes the rule. */
	if (matched && (inode->i_nlink > 1 || concrete)) {
		struct mis_rule_set merged = by_path, *old = bpf_map_lookup_elem(&mis_file_objects, &okey);

		if (old) {
			merged.bits[0] |= old->bits[0];
			merged.bits[1] |= old->bits[1];
			merged.bits[2] |= old->bits[2];
			merged.bits[3] |= old->bits[3];
		}
		if (!old || merged.bits[0] != old->bits[0] || merged.bits[1] != old->bits[1] ||
		    merged.bits[2] != old->bits[2] || merged.bits[3] != old->bits[3])
			bpf_map_update_elem(&mis_file_objects, &okey, &merged, BPF_ANY);
	}
	named = bpf_map_lookup_elem(&mis_file_objects, &okey);
	applies = op == MIS_OP_EXEC ? &fp->applies_exec : op == MIS_OP_FILE_WRITE ? &fp->applies_write : &fp->applies_read;
	for (int w = 0; w < 4; w++) {
		__u64 candidates = (by_path.bits[w] | (named ? named->bits[w] : 0)) & applies->bits[w];

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

/* The hook's answer for one open or exec of `file` by a task of a managed cgroup. */
static __always_inline int mis_lsm_file(struct file *file)
{
	struct mis_exec_phase_state *phase;
	const struct mis_file_policy *fp;
	struct mis_cgroup_state *s;
	struct mis_path_buf *b;
	struct mis_actor actor;
	struct mis_event *e;
	struct inode *inode;
	__u64 now, dev;
	__u32 op, level, verdict, zero = 0;
	bool interpreter = false;
	long len;

	s = mis_lsm_cgroup();
	if (!s)
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
	} else if ((file->f_mode & MIS_FMODE_WRITE) || (file->f_flags & MIS_O_TRUNC)) {
		op = MIS_OP_FILE_WRITE;
	} else {
		op = MIS_OP_FILE_READ;
	}

	len = bpf_d_path((struct path *)&file->f_path, b->path, MIS_PATH_MAX);
	if (len < 0)
		return -MIS_EPERM; /* longer than MIS_PATH_MAX: no rule could be checked */
	inode = file->f_inode;
	dev = inode->i_sb->s_dev;
	now = bpf_ktime_get_ns();
	mis_actor_current(&actor);
	/* The common case, as in sys_enter: no violation counted means DEFCON 5, nothing to decay. */
	if (READ_ONCE(s->violations)) {
		mis_decay(s, now, &actor);
		level = mis_level(s);
	} else {
		level = MIS_DEFCON_NORMAL;
	}

	verdict = mis_lsm_decide(s, fp, op, interpreter, b, inode, dev, level);
	if (verdict == MIS_DECISION_ALLOW)
		return 0;
	if (verdict == MIS_DECISION_TRACE) {
		e = mis_trace_event(s, now, &actor, op);
		if (e) {
			bpf_probe_read_kernel_str(e->target, sizeof(e->target), b->path);
			bpf_ringbuf_submit(e, 0);
		}
		return 0;
	}
	e = mis_event_reserve_full();
	if (e)
		bpf_probe_read_kernel_str(e->target, sizeof(e->target), b->path);
	mis_violation(s, now, &actor, op, e);
	return -MIS_EPERM;
}

#endif /* MIS_LSM_H */
