// SPDX-License-Identifier: GPL-2.0
// The enforcer's programs: the per-syscall hook (slowdown, learning-mode stream, kernel-side
// kill), the per-cgroup network deny points, the exec backstop, and mis_report, through which
// user-space deny points reach the same DEFCON state machine (include/mis_defcon.h).
// Loaded by src/Mis.Enforcer/Kernel/KernelEnforcer.cs.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "mis_net.h"
#include "mis_unix.h"
#include "mis_egress.h"
#include "mis_path_match.h"
#include "mis_lsm.h"

char LICENSE[] SEC("license") = "GPL";

#if defined(__TARGET_ARCH_x86)
#define MIS_IS_EXEC(id) ((id) == 59 /* execve */ || (id) == 322 /* execveat */)
#elif defined(__TARGET_ARCH_arm64)
#define MIS_IS_EXEC(id) ((id) == 221 || (id) == 281)
#endif

// Syscalls whose first argument is a socket that serves a Unix name (see mis_unix_learn).
#if defined(__TARGET_ARCH_x86)
#define MIS_UNIX_SERVES(id) ((id) == 50 /* listen */ || (id) == 45 /* recvfrom */ || \
			     (id) == 47 /* recvmsg */ || (id) == 299 /* recvmmsg */)
#elif defined(__TARGET_ARCH_arm64)
#define MIS_UNIX_SERVES(id) ((id) == 201 || (id) == 207 || (id) == 212 || (id) == 243)
#endif
// bpf_loop's own ceiling; each iteration reads the clock, so this bounds one busy-wait to
// roughly 100-200 ms whatever the configuration asks.
#define MIS_SPIN_MAX_LOOPS (1 << 23)
// A SLOWDOWN_TOTAL event every time a cgroup's total crosses a multiple of this (100 ms):
// the reward signal stays fresh without one event per slowed syscall.
#define MIS_SLOWDOWN_REPORT_NS 100000000ULL

struct mis_spin {
	__u64 until;
};

static long mis_spin_step(__u64 index, void *ctx)
{
	struct mis_spin *spin = ctx;

	return bpf_ktime_get_ns() >= spin->until; // 1 stops the loop
}

// Hook: every syscall entry of every task on the host (BTF-typed raw tracepoint). Attached
// only while at least one cgroup is managed. Not sleepable, runs in the task's context with
// RCU held: may busy-wait (bounded by bpf_loop) and signal the current task, may not block.
// Unmanaged tasks leave after one helper call that compares cgroup ancestry (no hash lookup).
SEC("tp_btf/sys_enter")
int BPF_PROG(mis_sys_enter, struct pt_regs *regs, long id)
{
	struct mis_cgroup_state *s;
	struct mis_actor actor;
	__u64 cgroup_id, now, wait, spent, total;
	__u32 level;

	if (bpf_current_task_under_cgroup(&mis_root, 0) != 1)
		return 0;
	cgroup_id = mis_current_cgroup_id();
	s = bpf_map_lookup_elem(&mis_cgroups, &cgroup_id);
	if (!s)
		return 0;

	__sync_fetch_and_add(&s->syscalls, 1);
	if (MIS_IS_EXEC(id) && (READ_ONCE(s->flags) & MIS_CG_LSM_FILES))
		mis_lsm_exec_begins();
#ifdef MIS_UNIX_SERVES
	if (MIS_UNIX_SERVES(id))
		mis_unix_learn(cgroup_id, (int)PT_REGS_PARM1_CORE_SYSCALL(regs));
#endif
	/* The common case, a cgroup with no violation counted, not learning, not killed: DEFCON 5,
	 * nothing to decay, slow down or record, so neither the clock nor the task is read. */
	if (!READ_ONCE(s->violations) && !(READ_ONCE(s->flags) & (MIS_CG_LEARNING | MIS_CG_KILLED)))
		return 0;

	now = bpf_ktime_get_ns();
	mis_actor_current(&actor);
	mis_decay(s, now, &actor);

	if (mis_must_kill(s)) {
		// DEFCON 1: user space writes cgroup.kill on the KILL event; this catches every task
		// of the cgroup at its next syscall even before that, and any task that raced it.
		mis_kill_current();
		return 0;
	}

	level = mis_level(s);
	if (READ_ONCE(s->flags) & MIS_CG_LEARNING)
		mis_emit_small(MIS_EV_SYSCALL, now, s, &actor, READ_ONCE(s->violations),
			       level, level, (__u64)id);

	wait = mis_slowdown_ns(s, level);
	if (!wait)
		return 0;
	struct mis_spin spin = { .until = now + wait };

	bpf_loop(MIS_SPIN_MAX_LOOPS, mis_spin_step, &spin, 0);
	spent = bpf_ktime_get_ns() - now;
	total = __sync_fetch_and_add(&s->slowdown_ns_total, spent) + spent;
	if (total / MIS_SLOWDOWN_REPORT_NS != (total - spent) / MIS_SLOWDOWN_REPORT_NS)
		mis_emit_small(MIS_EV_SLOWDOWN_TOTAL, now, s, &actor, READ_ONCE(s->violations),
			       level, level, total);
	return 0;
}

// Hook: socket() creating an AF_INET or AF_INET6 socket in a managed cgroup (attached per
// managed cgroup; other families never reach this hook). Process context, after the protocol's
// own init (so capability and ping_group_range checks came first), not sleepable; returning 0
// makes socket() fail with EPERM. Refuses the protocols no rule can hold for (see mis_net.h).
SEC("cgroup/sock_create")
int mis_sock_create(struct bpf_sock *sk)
{
	return mis_net_decide_socket(sk->family, sk->type, sk->protocol);
}

// Reads an IPv4 destination (connect4 and sendmsg4 contexts).
static __always_inline void mis_dest_v4(struct bpf_sock_addr *ctx, struct mis_dest *d)
{
	__u32 ip4 = ctx->user_ip4;

	d->family = MIS_AF_INET;
	d->protocol = mis_rule_protocol(ctx->protocol);
	d->port = bpf_ntohs((__u16)ctx->user_port);
	__builtin_memcpy(d->addr, &ip4, 4);
}

// Hook: connect() on an AF_INET socket created in a managed cgroup (attached per managed
// cgroup, so no other process runs it). Process context, not sleepable; returning 0 makes
// connect() fail with EPERM. May signal the current task (bpf_send_signal is offered to
// cgroup socket programs on the kernels MIS targets).
SEC("cgroup/connect4")
int mis_connect4(struct bpf_sock_addr *ctx)
{
	struct mis_dest d = {};

	mis_dest_v4(ctx, &d);
	return mis_net_decide(&d, MIS_OP_CONNECT);
}

// Reads an IPv6 destination, folding IPv4-mapped addresses into IPv4 (see mis_net.h).
static __always_inline void mis_dest_v6(struct bpf_sock_addr *ctx, struct mis_dest *d)
{
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];

	d->protocol = mis_rule_protocol(ctx->protocol);
	d->port = bpf_ntohs((__u16)ctx->user_port);
	if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff)) {
		d->family = MIS_AF_INET;
		__builtin_memcpy(d->addr, &w3, 4);
		return;
	}
	d->family = MIS_AF_INET6;
	__builtin_memcpy(d->addr, &w0, 4);
	__builtin_memcpy(d->addr + 4, &w1, 4);
	__builtin_memcpy(d->addr + 8, &w2, 4);
	__builtin_memcpy(d->addr + 12, &w3, 4);
}

// Hook: connect() on an AF_INET6 socket of a managed cgroup. Same context as connect4.
SEC("cgroup/connect6")
int mis_connect6(struct bpf_sock_addr *ctx)
{
	struct mis_dest d = {};

	mis_dest_v6(ctx, &d);
	return mis_net_decide(&d, MIS_OP_CONNECT);
}

// Hook: sendto()/sendmsg() with a destination on an unconnected UDP (or raw) AF_INET socket of
// a managed cgroup; connected sockets were decided at connect. Returning 0 fails with EPERM.
SEC("cgroup/sendmsg4")
int mis_sendmsg4(struct bpf_sock_addr *ctx)
{
	struct mis_dest d = {};

	mis_dest_v4(ctx, &d);
	return mis_net_decide(&d, MIS_OP_SEND);
}

// Hook: as sendmsg4, for AF_INET6 sockets.
SEC("cgroup/sendmsg6")
int mis_sendmsg6(struct bpf_sock_addr *ctx)
{
	struct mis_dest d = {};

	mis_dest_v6(ctx, &d);
	return mis_net_decide(&d, MIS_OP_SEND);
}

// Hook: every packet a socket of a managed cgroup sends, IPv4 and IPv6 (attached per managed
// cgroup), after routing, in the sender's context or in softirq; not sleepable. Returning 0
// drops the packet: a UDP send fails with EPERM, TCP sees a local drop and retransmits (into
// the same drop). Covers accepted connections and lockdown of established ones (mis_egress.h).
SEC("cgroup_skb/egress")
int mis_egress(struct __sk_buff *skb)
{
	return mis_egress_decide(skb);
}

// Weak: a kernel without it (before 6.2) has no Unix socket hooks either, and those programs are not loaded there.
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym __weak;

// Hook: connect() of an AF_UNIX socket of a managed cgroup to a name (Linux 6.7+; attached per
// managed cgroup, only where the kernel has it). Process context, before the name is looked up,
// not sleepable; returning 0 makes connect() fail with EPERM. The name is read from the kernel's
// copy of the address (bpf_sock_addr_kern), never from user memory.
SEC("cgroup/connect_unix")
int mis_connect_unix(struct bpf_sock_addr *ctx)
{
	return mis_unix_decide(bpf_cast_to_kern_ctx(ctx), MIS_OP_CONNECT);
}

// Hook: sendto()/sendmsg() with a destination name on an AF_UNIX datagram socket of a managed
// cgroup (connected sockets were decided at connect). Same context as connect_unix.
SEC("cgroup/sendmsg_unix")
int mis_sendmsg_unix(struct bpf_sock_addr *ctx)
{
	return mis_unix_decide(bpf_cast_to_kern_ctx(ctx), MIS_OP_SEND);
}

// Hook: after a successful exec, in the new program's task, before it runs a user
// instruction (global; attached together with sys_enter). Not sleepable. A backstop for path
// checks decided elsewhere that a racing rename or a rewritten path buffer could have fooled:
// the file that was actually mapped (after every #! interpreter) is judged by (dev, inode). It
// is a violation and a SIGKILL when it is in the policy's exec deny set, or when the supervisor
// approved this thread's exec for another file. old_pid is the execing thread's id before exec
// (a non-leader thread takes over the leader's pid), which is what the supervisor saw.
SEC("tp_btf/sched_process_exec")
int BPF_PROG(mis_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	struct mis_exec_approval *approved;
	struct mis_exec_key key = {};
	struct mis_cgroup_state *s;
	struct mis_actor actor;
	struct mis_event *e;
	struct inode *inode;
	__u32 tid = old_pid;
	__u64 cgroup_id;
	bool refused;

	if (bpf_current_task_under_cgroup(&mis_root, 0) != 1)
		return 0;
	cgroup_id = mis_current_cgroup_id();
	s = bpf_map_lookup_elem(&mis_cgroups, &cgroup_id);
	if (!s)
		return 0;
	inode = bprm->file->f_inode;
	key.dev = inode->i_sb->s_dev;
	key.ino = inode->i_ino;
	key.policy_id = s->policy_id;
	/*
	 * The supervisor decided this exec with the whole policy (its DEFCON conditions, the runtime
	 * rules, the gym's record-and-allow learning): when it approved one, running exactly that file is the answer and
	 * anything else is a path rewritten meanwhile. Without an approval, the deny set decides.
	 */
	approved = bpf_map_lookup_elem(&mis_exec_approved, &tid);
	if (approved && approved->cgroup_id == cgroup_id) {
		refused = approved->dev != key.dev || approved->ino != key.ino;
		bpf_map_delete_elem(&mis_exec_approved, &tid);
	} else {
		refused = bpf_map_lookup_elem(&mis_exec_deny, &key) != NULL;
	}
	if (!refused)
		return 0;

	mis_actor_current(&actor);
	e = mis_event_reserve_full();
	if (e)
		bpf_probe_read_kernel_str(e->target, sizeof(e->target), bprm->filename);
	mis_violation(s, bpf_ktime_get_ns(), &actor, MIS_OP_EXEC, e);
	mis_kill_current();
	return 0;
}

// Hook (BPF LSM, global; loaded only where the kernel allows lsm/ programs and attached while a
// cgroup is managed): every file open on the host, after the file is opened and before the fd is
// installed, in the opener's context (for an exec, the kernel opening the program or its
// interpreter), not sleepable. Returning -EPERM makes the open (or the exec) fail with EPERM.
// Decides only for cgroups managed with MIS_CG_LSM_FILES (mis_lsm.h); everything else leaves
// after the ancestry check.
SEC("lsm/file_open")
int BPF_PROG(mis_file_open, struct file *file)
{
	return mis_lsm_file(file);
}

// Hooks (BPF LSM, global, as file_open; the kernel's path hooks, CONFIG_SECURITY_PATH): changes to
// the file tree, each decided as a write (mis_lsm_change) before the kernel makes it. A new name
// (mkdir, mknod and the create of an open, symlink) is decided on its path; unlink, rmdir,
// chmod, chown and truncate(2) on the file there; a link on its source, which gets a new name,
// then on the name it makes.
SEC("lsm/path_mknod")
int BPF_PROG(mis_path_mknod, const struct path *dir, struct dentry *dentry, umode_t mode, unsigned int dev)
{
	return mis_lsm_change(dir->mnt, dentry, false);
}

SEC("lsm/path_mkdir")
int BPF_PROG(mis_path_mkdir, const struct path *dir, struct dentry *dentry, umode_t mode)
{
	return mis_lsm_change(dir->mnt, dentry, false);
}

SEC("lsm/path_symlink")
int BPF_PROG(mis_path_symlink, const struct path *dir, struct dentry *dentry, const char *old_name)
{
	return mis_lsm_change(dir->mnt, dentry, false);
}

SEC("lsm/path_unlink")
int BPF_PROG(mis_path_unlink, const struct path *dir, struct dentry *dentry)
{
	return mis_lsm_change(dir->mnt, dentry, false);
}

SEC("lsm/path_rmdir")
int BPF_PROG(mis_path_rmdir, const struct path *dir, struct dentry *dentry)
{
	return mis_lsm_change(dir->mnt, dentry, false);
}

SEC("lsm/path_link")
int BPF_PROG(mis_path_link, struct dentry *old_dentry, const struct path *new_dir, struct dentry *new_dentry)
{
	int rc = mis_lsm_change(new_dir->mnt, old_dentry, true); /* a link never crosses a mount */

	return rc ? rc : mis_lsm_change(new_dir->mnt, new_dentry, false);
}

SEC("lsm/path_chmod")
int BPF_PROG(mis_path_chmod, const struct path *path, umode_t mode)
{
	return mis_lsm_change(path->mnt, path->dentry, false);
}

SEC("lsm/path_chown")
int BPF_PROG(mis_path_chown, const struct path *path, unsigned int uid, unsigned int gid) /* kuid_t, kgid_t */
{
	return mis_lsm_change(path->mnt, path->dentry, false);
}

// truncate(2) only: an open with O_TRUNC was decided as a write by file_open, and ftruncate acts
// on a descriptor whose open was decided.
SEC("lsm/path_truncate")
int BPF_PROG(mis_path_truncate, const struct path *path)
{
	if (mis_current_syscall() != MIS_SYS_TRUNCATE)
		return 0;
	return mis_lsm_change(path->mnt, path->dentry, false);
}

// Hook (BPF LSM, global, as file_open): a signal from a process (kill, tkill, tgkill,
// rt_[tg]sigqueueinfo with a pid > 0: the launcher's filter leaves those to the kernel here), on the
// task the kernel found, after its own permission check. A managed task may signal only tasks of
// its own cgroup, as the supervisor allows; decided on the task itself, so a pid freed and reused
// by another process between a decision and the signal cannot be hit.
SEC("lsm/task_kill")
int BPF_PROG(mis_task_kill, struct task_struct *p, struct kernel_siginfo *info, int sig, const struct cred *cred)
{
	struct mis_cgroup_state *s = mis_lsm_cgroup();
	struct mis_actor actor;
	struct mis_event *e;

	if (!s || BPF_CORE_READ(p, cgroups, dfl_cgrp, kn, id) == s->cgroup_id)
		return 0;
	mis_actor_current(&actor);
	e = mis_event_reserve_full();
	if (e) {
		e->value = MIS_DECIDED_LSM;
		mis_signal_syscall_name(e->target);
	}
	mis_violation(s, bpf_ktime_get_ns(), &actor, MIS_OP_ESCAPE_SYSCALL, e);
	return -MIS_EPERM;
}

// Hook (BPF LSM, global, as file_open): an exec about to hand a file to a binary format handler
// (for a #! script, again for its interpreter). Records whether it is an ELF, whose interpreter
// (PT_INTERP) the kernel opens next; never refuses.
SEC("lsm/bprm_check_security")
int BPF_PROG(mis_bprm_check, struct linux_binprm *bprm)
{
	struct mis_exec_phase_state *phase;

	if (!mis_lsm_cgroup())
		return 0;
	phase = bpf_task_storage_get(&mis_exec_phase, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (phase)
		phase->phase = bprm->buf[0] == 0x7f && bprm->buf[1] == 'E' && bprm->buf[2] == 'L' && bprm->buf[3] == 'F'
			? MIS_EXEC_ELF : MIS_EXEC_OTHER;
	return 0;
}

// A record of mis_report's: the supervisor decided, on the target it names.
static __always_inline void mis_report_record(struct mis_event *e, const struct mis_report_ctx *ctx)
{
	e->value = MIS_DECIDED_SUPERVISOR;
	__builtin_memcpy(e->target, ctx->target, sizeof(e->target));
	e->target[sizeof(e->target) - 1] = 0;
}

// Program: run by user space with BPF_PROG_TEST_RUN, never attached. Sleepable, in the
// enforcer's own context: "current" is the enforcer, so this program never signals and takes
// the reported task from the context; user space kills the cgroup when told DEFCON 1.
SEC("syscall")
int mis_report(struct mis_report_ctx *ctx)
{
	__u64 cgroup_id = ctx->cgroup_id;
	struct mis_cgroup_state *s = bpf_map_lookup_elem(&mis_cgroups, &cgroup_id);
	struct mis_actor actor = {};
	struct mis_outcome out;
	struct mis_event *e;
	__u64 now = ctx->now_ns ? ctx->now_ns : bpf_ktime_get_ns();

	if (!s) {
		ctx->result = MIS_RESULT_NO_CGROUP;
		return 0;
	}
	actor.pid = ctx->pid;
	actor.tid = ctx->tid;
	__builtin_memcpy(actor.comm, ctx->comm, sizeof(actor.comm));
	actor.comm[sizeof(actor.comm) - 1] = 0;

	mis_decay(s, now, &actor);
	ctx->defcon_before = mis_level(s);
	ctx->result = MIS_RESULT_OK;
	switch (ctx->command) {
	case MIS_CMD_QUERY:
		break;
	case MIS_CMD_VIOLATION:
		e = mis_event_reserve_full();
		if (e) {
			mis_report_record(e, ctx);
		}
		out = mis_violation(s, now, &actor, ctx->op, e);
		ctx->defcon_before = out.before;
		break;
	case MIS_CMD_SET_DEFCON:
		if (ctx->arg < MIS_DEFCON_MIN || ctx->arg > MIS_DEFCON_NORMAL) {
			ctx->result = MIS_RESULT_BAD_COMMAND;
			break;
		}
		out = mis_set_level(s, now, &actor, ctx->arg);
		ctx->defcon_before = out.before;
		break;
	case MIS_CMD_TRACE:
		e = mis_trace_event(s, now, &actor, ctx->op);
		if (e) {
			mis_report_record(e, ctx);
			bpf_ringbuf_submit(e, 0);
		}
		break;
	case MIS_CMD_SET_LEARNING:
		if (ctx->arg)
			__sync_fetch_and_or(&s->flags, (__u64)MIS_CG_LEARNING);
		else
			__sync_fetch_and_and(&s->flags, ~(__u64)MIS_CG_LEARNING);
		break;
	default:
		ctx->result = MIS_RESULT_BAD_COMMAND;
		break;
	}
	ctx->violations = READ_ONCE(s->violations);
	ctx->defcon_after = mis_level(s);
	ctx->learning_violations = READ_ONCE(s->learning_violations);
	ctx->slowdown_ns_total = READ_ONCE(s->slowdown_ns_total);
	ctx->syscalls = READ_ONCE(s->syscalls);
	ctx->flags = READ_ONCE(s->flags);
	ctx->policy_id = s->policy_id;
	return 0;
}

// Program: run by user space with BPF_PROG_TEST_RUN, never attached. The kernel's path-glob
// matcher (mis_path_match.h) on a path user space gives: tests hold it to the policy's own
// patterns byte for byte. Touches nothing but its context and a per-CPU scratch buffer.
SEC("syscall")
int mis_glob_match(struct mis_glob_match_ctx *ctx)
{
	__u64 rules[4] = {};
	struct mis_path_buf *b;
	__u32 zero = 0;

	b = bpf_map_lookup_elem(&mis_path_scratch, &zero);
	if (!b)
		return 0;
	__builtin_memcpy(b->path, ctx->path, MIS_PATH_MAX);
	b->path[MIS_PATH_MAX - 1] = 0;
	ctx->words = mis_glob_match_all(ctx->policy_id, b, rules);
	ctx->matched[0] = rules[0];
	ctx->matched[1] = rules[1];
	ctx->matched[2] = rules[2];
	ctx->matched[3] = rules[3];
	return 0;
}
