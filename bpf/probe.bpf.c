// SPDX-License-Identifier: GPL-2.0
// Capability probes for `mis doctor`: one trivial program per program kind MIS may use.
// Doctor opens this object once per probe, loads exactly one program and attaches it, then
// detaches. Every program does nothing, so attaching one for a moment taxes nobody.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

// BTF-typed tracepoint on every syscall entry: the slowdown / syscall-stream / kill hook.
SEC("tp_btf/sys_enter")
int BPF_PROG(probe_tp_btf, struct pt_regs *regs, long id)
{
	return 0;
}

// The same hook without BTF typing, the fallback where tp_btf is refused.
SEC("raw_tracepoint/sys_enter")
int probe_raw_tracepoint(struct bpf_raw_tracepoint_args *ctx)
{
	return 0;
}

// BPF LSM: the deny point of choice where the kernel lets trampolines load. Returning 0 allows.
SEC("lsm/file_open")
int BPF_PROG(probe_lsm, struct file *file)
{
	return 0;
}

// fentry needs the same trampoline machinery as lsm; vfs_read exists on every kernel.
SEC("fentry/vfs_read")
int BPF_PROG(probe_fentry, struct file *file)
{
	return 0;
}

// cgroup socket hooks: deny points for network operations, attached per cgroup. 1 allows.
SEC("cgroup/connect4")
int probe_cgroup_connect4(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("cgroup/sock_create")
int probe_cgroup_sock_create(struct bpf_sock *ctx)
{
	return 1;
}

// Unix socket hooks (Linux 6.7+): where they exist, Unix connects are decided too. libbpf 1.1
// does not know the section; the prober sets the program type itself, as the enforcer does.
SEC("cgroup/connect_unix")
int probe_cgroup_connect_unix(struct bpf_sock_addr *ctx)
{
	return 1;
}

// Syscall programs run only through BPF_PROG_TEST_RUN; doctor checks the return value arrives.
#define PROBE_SYSCALL_RETVAL 42

SEC("syscall")
int probe_syscall(void *ctx)
{
	return PROBE_SYSCALL_RETVAL;
}
