/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Unix socket decisions for the cgroup unix hooks (connect_unix, sendmsg_unix; Linux 6.7+).
 *
 * A connect() or an addressed send to a Unix socket name is allowed when the name is the
 * workload's own: a socket of the same cgroup serves it (learned at listen() or at a receive,
 * below; a datagram socket that has never received is not known yet). Else
 * the policy's [[unix]] rule for the exact name decides (allow, deny, trace). Else it is denied
 * and counted: a host service's socket (abstract or path) is outside the workload's tree.
 * Nameless sockets (socketpair, inherited descriptors) never reach these hooks.
 *
 * The hooks run before the kernel looks the name up, so they decide on the name, not on the
 * socket it leads to. For abstract names that is the same thing (no links in that namespace).
 * A path name of the workload's own can be turned into a symlink to another socket after its
 * listener is gone; see the limits in README ("mis run", Network).
 */
#ifndef MIS_UNIX_H
#define MIS_UNIX_H

#include "mis_net.h"

#define MIS_AF_UNIX 1

/* Fills key->name and key->len from a sockaddr_un's sun_path of `path_len` bytes at `sun_path`
 * (kernel memory). key->name must be zeroed: its bytes past the name stay 0, as user space
 * writes the names it puts in the maps. Returns 0 when there is no name. No loop: a byte-by-byte
 * scan of sun_path, which the verifier walks iteration by iteration, was most of the load time
 * of every program that names a Unix socket. */
static __always_inline int mis_unix_name(struct mis_unix_key *key, const void *sun_path, __u32 path_len)
{
	/* 64-bit: a 32-bit value is bounds-checked on a zero-extended copy of its register, which
	 * the verifier does not relate back to the register passed as the size. */
	__u64 n = path_len, size;
	long copied;
	char first;

	if (n == 0 || bpf_probe_read_kernel(&first, 1, sun_path))
		return 0;
	if (n > MIS_UNIX_NAME_MAX)
		n = MIS_UNIX_NAME_MAX;
	barrier_var(n); /* bound-check the register passed as the size, not a copy clang made */
	if (n > MIS_UNIX_NAME_MAX)
		return 0;
	if (first == 0) {
		/* An abstract name keeps every byte. */
		if (bpf_probe_read_kernel(key->name, n, sun_path))
			return 0;
		key->len = n;
		return 1;
	}
	/* A path ends at its first NUL within its n bytes (unix_mkname_bsd): a string read of at
	 * most n bytes and its NUL. The buffer has no room for a NUL after a 108th byte, so when
	 * 107 bytes came without one, the 108th is read by itself (over the read's NUL). */
	size = n < MIS_UNIX_NAME_MAX ? n + 1 : MIS_UNIX_NAME_MAX;
	barrier_var(size);
	if (size > MIS_UNIX_NAME_MAX)
		return 0;
	copied = bpf_probe_read_kernel_str(key->name, size, sun_path);
	if (copied <= 1)
		return 0;
	key->len = copied - 1;
	if (copied == MIS_UNIX_NAME_MAX && n == MIS_UNIX_NAME_MAX) {
		if (bpf_probe_read_kernel(&key->name[MIS_UNIX_NAME_MAX - 1], 1,
					  (const char *)sun_path + MIS_UNIX_NAME_MAX - 1))
			return 0;
		if (key->name[MIS_UNIX_NAME_MAX - 1])
			key->len = MIS_UNIX_NAME_MAX;
	}
	return 1;
}

static const char mis_fmt_unix_path[] = "unix:%s";
static const char mis_fmt_unix_abstract[] = "unix:@%s";

static __always_inline void mis_unix_format(char *target, const struct mis_unix_key *key)
{
	__u64 args[1];

	if (key->name[0]) {
		args[0] = (__u64)(unsigned long)key->name;
		bpf_snprintf(target, 256, mis_fmt_unix_path, args, sizeof(args));
	} else {
		args[0] = (__u64)(unsigned long)(key->name + 1);
		bpf_snprintf(target, 256, mis_fmt_unix_abstract, args, sizeof(args));
	}
}

/*
 * Decides a connect (op MIS_OP_CONNECT) or addressed send (MIS_OP_SEND) of the current task to
 * the Unix name in `sa` (the kernel's copy of the caller's address). Returns 1 to allow, 0 to
 * deny (EPERM) after counting the violation.
 */
static __always_inline int mis_unix_decide(struct bpf_sock_addr_kern *sa, __u32 op)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct mis_cgroup_state *s = bpf_map_lookup_elem(&mis_cgroups, &cgroup_id);
	const struct mis_net_value *rule;
	struct mis_unix_key key = {};
	struct mis_actor actor;
	struct mis_event *e;
	__u32 action;
	__u64 now;

	if (!s)
		return 1;
	if (sa->uaddrlen <= 2 || !mis_unix_name(&key, (const char *)sa->uaddr + 2, sa->uaddrlen - 2))
		return 1; /* no name: the kernel refuses it (EINVAL) or autobinds; nothing is reached */

	key.scope = cgroup_id;
	if (bpf_map_lookup_elem(&mis_unix_own, &key))
		return 1;
	key.scope = s->policy_id;
	rule = bpf_map_lookup_elem(&mis_unix_rules, &key);
	action = rule ? rule->action : MIS_DECISION_DENY;

	now = bpf_ktime_get_ns();
	mis_actor_current(&actor);
	mis_decay(s, now, &actor);
	if (action == MIS_DECISION_TRACE) {
		e = mis_trace_event(s, now, &actor, op);
		if (e) {
			mis_unix_format(e->target, &key);
			bpf_ringbuf_submit(e, 0);
		}
		return 1;
	}
	if (action != MIS_DECISION_DENY)
		return 1;
	e = mis_event_reserve_full();
	if (e)
		mis_unix_format(e->target, &key);
	return mis_net_deny(s, now, &actor, op, e);
}

/* A descriptor is a socket when its inode lives in sockfs: only then is private_data a struct
 * socket (an O_PATH descriptor of a socket file has its filesystem's inode). Not the f_op
 * address: kallsyms has no data symbols without CONFIG_KALLSYMS_ALL (measured: none here). */
#define MIS_SOCKFS_MAGIC 0x534F434B

/*
 * At listen(fd), or a receive on fd (recvfrom, recvmsg, recvmmsg: a datagram server never
 * listens), by a task of a managed cgroup (called from sys_enter): when fd is a bound Unix
 * socket, its name becomes one of the cgroup's own. The name is read from the kernel's socket
 * (what bind() really bound), not from user memory that another thread could rewrite. A name
 * learned here stays the cgroup's until it is unmanaged (or evicted, see mis_unix_own).
 */
static __always_inline void mis_unix_learn(__u64 cgroup_id, int fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct mis_unix_key key = {};
	struct unix_address *addr;
	struct file **fds, *file;
	struct socket *sock;
	struct sock *sk;
	__u32 one = 1;
	int len;

	if (fd < 0 || (unsigned int)fd >= BPF_CORE_READ(task, files, fdt, max_fds))
		return;
	fds = BPF_CORE_READ(task, files, fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return;
	if (BPF_CORE_READ(file, f_inode, i_sb, s_magic) != MIS_SOCKFS_MAGIC)
		return;
	sock = BPF_CORE_READ(file, private_data);
	sk = BPF_CORE_READ(sock, sk);
	if (!sk || BPF_CORE_READ(sk, __sk_common.skc_family) != MIS_AF_UNIX)
		return;
	addr = BPF_CORE_READ((struct unix_sock *)sk, addr);
	if (!addr)
		return;
	len = BPF_CORE_READ(addr, len); /* includes sun_family */
	if (len <= 2 || !mis_unix_name(&key, (const char *)addr->name + 2, len - 2))
		return;
	key.scope = cgroup_id;
	bpf_map_update_elem(&mis_unix_own, &key, &one, BPF_ANY);
}

#endif /* MIS_UNIX_H */
