// SPDX-License-Identifier: GPL-2.0
// The floor `mis bench` measures MIS against: empty programs at every hook the enforcer
// (enforcer.bpf.c) attaches to. Whatever the kernel charges for running any BPF program at those
// hooks (the trampoline into the program, the tracepoint's own cost) is paid here too, so the
// difference between this and the enforcer is what MIS's own code costs. Loaded only by
// src/Mis.Enforcer/Bench/KernelOverheadBench.cs, never by the enforcer.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

// Hook: every syscall entry on the host (as mis_sys_enter). Does nothing.
SEC("tp_btf/sys_enter")
int BPF_PROG(floor_sys_enter, struct pt_regs *regs, long id)
{
	return 0;
}

// Hook: every successful exec on the host (as mis_exec). Does nothing.
SEC("tp_btf/sched_process_exec")
int BPF_PROG(floor_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	return 0;
}

// Hooks: connect/sendmsg of a cgroup's sockets (as mis_connect4/6, mis_sendmsg4/6). Allow all.
SEC("cgroup/connect4")
int floor_connect4(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("cgroup/connect6")
int floor_connect6(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("cgroup/sendmsg4")
int floor_sendmsg4(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("cgroup/sendmsg6")
int floor_sendmsg6(struct bpf_sock_addr *ctx)
{
	return 1;
}
