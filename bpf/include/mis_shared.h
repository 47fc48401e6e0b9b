/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The contract between MIS's BPF programs and user space: the single definition of every struct
 * and constant that crosses the kernel boundary. Fixed-width types only, no pointers, explicit
 * padding, every struct a multiple of 8 bytes, so the C# mirrors in src/Mis.Enforcer/Kernel/
 * ([StructLayout(LayoutKind.Sequential)]) get the same layout without packing tricks.
 * KernelStructLayoutTests compares each struct's size and field offsets, read from the compiled
 * object's BTF, with the mirrors: change a struct here and that test names the drifted field.
 */
#ifndef MIS_SHARED_H
#define MIS_SHARED_H

#ifndef __VMLINUX_H__
#include <linux/types.h> /* user-space C consumers; BPF code gets the types from vmlinux.h */
#endif

/* DEFCON levels: 5 is normal, 1 the most severe (the cgroup is killed when kill_at_level_1). */
#define MIS_DEFCON_NORMAL     5
#define MIS_DEFCON_MIN        1
#define MIS_DEFCON_THRESHOLDS 4 /* violation counts entering DEFCON 4, 3, 2, 1 */
#define MIS_DEFCON_SLOWDOWNS  3 /* per-syscall delay at DEFCON 4, 3, 2 (level 1 uses the level-2 one) */

/* What a violation was about; mirrors ViolationOp in src/Mis.Enforcer/Policy/Contracts.cs. */
enum mis_op {
	MIS_OP_NONE = 0,
	MIS_OP_FILE_READ = 1,
	MIS_OP_FILE_WRITE = 2,
	MIS_OP_EXEC = 3,
	MIS_OP_CONNECT = 4,
	MIS_OP_SEND = 5,
	MIS_OP_ESCAPE_SYSCALL = 6,
};

/* A rule's or a hook's answer; the numbers are the seed's AddRule actions (Verdict in C#). */
enum mis_decision {
	MIS_DECISION_ALLOW = 0,
	MIS_DECISION_DENY = 1,
	MIS_DECISION_TRACE = 2,
};

/* mis_cgroup_state.flags and mis_event.flags. */
enum mis_cgroup_flags {
	MIS_CG_LEARNING = 1 << 0, /* violations are reported but do not escalate */
	MIS_CG_KILLED = 1 << 1,   /* DEFCON 1 reached with kill_at_level_1: the cgroup is being killed */
	MIS_CG_LSM_FILES = 1 << 2, /* its opens and execs are decided by the BPF LSM hooks (mis_lsm.h) */
};

/* mis_event.type */
enum mis_event_type {
	MIS_EV_VIOLATION = 1,        /* a denied operation (op, target, decision, violations after it) */
	MIS_EV_DEFCON = 2,           /* level change: prev_defcon -> defcon (escalation or decay) */
	MIS_EV_KILL = 3,             /* DEFCON 1 reached: user space writes cgroup.kill */
	MIS_EV_SYSCALL = 4,          /* learning-mode syscall stream: value = syscall number */
	MIS_EV_SLOWDOWN_TOTAL = 5,   /* value = slowdown_ns_total, every MIS_SLOWDOWN_REPORT_NS of it */
	MIS_EV_TRACE = 6,            /* an operation a trace rule let through (op, target) */
};

/*
 * Per-cgroup DEFCON configuration, copied into each cgroup's state so different cgroups can run
 * different configurations. thresholds must be strictly increasing and at least 1.
 */
struct mis_defcon_config {
	__u64 thresholds[MIS_DEFCON_THRESHOLDS]; /* violations entering DEFCON 4, 3, 2, 1 */
	__u64 slowdown_ns[MIS_DEFCON_SLOWDOWNS]; /* busy-wait per syscall at DEFCON 4, 3, 2 */
	__u64 decay_interval_ns;                 /* 0 = no decay */
	__u64 decay_amount;                      /* violations forgiven per full interval */
	__u32 kill_at_level_1;                   /* 1: DEFCON 1 kills the cgroup */
	__u32 net_lockdown_level;                /* at or below this level, unlisted network is denied; 0 = never */
};

/*
 * Per-cgroup state, value of the mis_cgroups hash (key: cgroup id = inode of the cgroup
 * directory). Counters change only through atomics in the kernel; user space creates the entry
 * and then only reads it or changes it through the mis_report program, never by overwriting it.
 */
struct mis_cgroup_state {
	__u64 cgroup_id;
	__u64 violations;          /* counted violations, decay applied; the level derives from it */
	__u64 learning_violations; /* denials seen in learning mode (not counted) */
	__u64 slowdown_ns_total;   /* busy-wait actually spent in this cgroup's syscalls */
	__u64 syscalls;            /* syscalls entered by the cgroup's tasks while sys_enter was attached */
	__u64 last_violation_ns;   /* ktime of the last counted violation, 0 if none */
	__u64 decay_anchor_ns;     /* last counted violation or last decay step: decay measures from here */
	__u64 flags;               /* MIS_CG_*; 64-bit because BPF's atomic or/and need 64 bits before -mcpu=v3 */
	__u32 policy_id;           /* selects the network and exec rules */
	__u32 view_slot;           /* this cgroup's word in mis_defcon_view, chosen by user space */
	struct mis_defcon_config config;
	__u64 view_gen;            /* tickets of publications to mis_defcon_view (see mis_publish) */
	__u64 started_realtime_ns; /* CLOCK_REALTIME when the workload started: an exec of a file whose
				    * ctime is later was written during the run (exec allow-list) */
};

/*
 * mis_defcon_view: one 64-bit word per view slot, memory-mapped by user space, so that the
 * seccomp supervisor reads a cgroup's DEFCON level with a load instead of a BPF_PROG_TEST_RUN.
 * The word is the level the state machine derives now and how long that stays true without a
 * new violation: bits 0-2 the level (0: no view, ask the kernel), 3-18 the publication's ticket
 * (low 16 bits of view_gen), 19-63 the CLOCK_MONOTONIC millisecond (rounded down) at which decay
 * would change the level; all ones: never (no decay configured, DEFCON 5, or killed).
 */
#define MIS_VIEW_LEVEL_BITS 3
#define MIS_VIEW_GEN_BITS   16
#define MIS_VIEW_UNTIL_SHIFT (MIS_VIEW_LEVEL_BITS + MIS_VIEW_GEN_BITS)
#define MIS_VIEW_UNTIL_NEVER ((1ULL << (64 - MIS_VIEW_UNTIL_SHIFT)) - 1)

/*
 * One ring-buffer record. Only MIS_EV_VIOLATION and MIS_EV_TRACE records carry a target and are
 * sizeof(struct mis_event) bytes long; every other type is MIS_EVENT_HEADER_SIZE bytes (the
 * learning-mode stream is one record per syscall, so it stays small).
 */
struct mis_event {
	__u64 timestamp_ns; /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__u64 cgroup_id;
	__u64 violations;   /* the cgroup's counted violations after this event */
	__u64 value;        /* syscall number (SYSCALL), slowdown_ns_total (SLOWDOWN_TOTAL), the deny
	                     * point (VIOLATION, TRACE: MIS_DECIDED_*), 0 otherwise */
	__u32 type;         /* MIS_EV_* */
	__u32 pid;          /* tgid of the task, 0 when not known */
	__u32 tid;
	__u32 op;           /* MIS_OP_* */
	__u32 decision;     /* MIS_DECISION_* */
	__u32 defcon;       /* level after the event */
	__u32 prev_defcon;  /* level before the event */
	__u32 flags;        /* the cgroup's MIS_CG_* at the time */
	char comm[16];
	char target[256];   /* path, or "addr:port" ("[v6]:port") for network operations */
};

/* mis_event.value of VIOLATION and TRACE records: which deny point decided. */
enum mis_decided_by {
	MIS_DECIDED_HOOK = 0,       /* a hook of its own: sys_enter, the cgroup socket hooks, the exec backstop */
	MIS_DECIDED_LSM = 1,        /* the BPF LSM file hooks (mis_lsm.h) */
	MIS_DECIDED_SUPERVISOR = 2, /* user space, through mis_report: the seccomp supervisor */
};

#define MIS_EVENT_HEADER_SIZE 80 /* offsetof(struct mis_event, target) */

/* mis_report_ctx.command */
enum mis_command {
	MIS_CMD_QUERY = 0,        /* apply decay, return the state */
	MIS_CMD_VIOLATION = 1,    /* count one violation of type op, then return the state */
	MIS_CMD_SET_LEARNING = 2, /* arg = 1 enables learning mode, 0 disables it */
	MIS_CMD_SET_DEFCON = 3,   /* arg = level 1..5: set violations to that level's entry count */
	MIS_CMD_TRACE = 4,        /* emit a TRACE event of type op for target (a trace rule let it through) */
};

/* mis_report_ctx.result */
enum mis_result {
	MIS_RESULT_OK = 0,
	MIS_RESULT_NO_CGROUP = 1, /* the cgroup is not managed */
	MIS_RESULT_BAD_COMMAND = 2,
};

/*
 * Context of the mis_report `syscall` program, run by user space with BPF_PROG_TEST_RUN. The
 * kernel copies the context back into the caller's buffer after the run (syscall programs
 * have no separate ctx_out), so the "out" fields are read from the same buffer.
 */
struct mis_report_ctx {
	__u64 cgroup_id;           /* in */
	__u64 now_ns;              /* in: the clock for this call; 0 = bpf_ktime_get_ns() */
	__u32 command;             /* in: MIS_CMD_* */
	__u32 op;                  /* in: MIS_OP_* (MIS_CMD_VIOLATION) */
	__u32 pid;                 /* in */
	__u32 tid;                 /* in */
	__u32 arg;                 /* in: command argument */
	__u32 result;              /* out: MIS_RESULT_* */
	__u64 violations;          /* out */
	__u64 learning_violations; /* out */
	__u64 slowdown_ns_total;   /* out */
	__u64 syscalls;            /* out */
	__u32 defcon_before;       /* out: level before the command (decay applied) */
	__u32 defcon_after;        /* out */
	__u32 flags;               /* out: MIS_CG_* */
	__u32 policy_id;           /* out */
	char comm[16];             /* in: the reporting task's comm, for the event */
	char target[256];          /* in: path or "addr:port", for the event */
};

/*
 * Network rules: an LPM trie keyed by everything below. The prefix always covers policy_id,
 * family, protocol and port (64 bits) and then addr_prefix bits of the address, so
 * prefixlen = MIS_NET_FIXED_PREFIX + addr_prefix. protocol 0 and port 0 are wildcards: the
 * hook looks up (protocol, port), (protocol, any), (any, port), (any, any) in that order and
 * the first hit wins; within one lookup the longest address prefix wins.
 */
#define MIS_NET_FIXED_PREFIX 64
#define MIS_AF_INET  2  /* AF_INET; IPv4-mapped IPv6 addresses are matched as IPv4 */
#define MIS_AF_INET6 10 /* AF_INET6 */

struct mis_net_key {
	__u32 prefixlen;
	__u32 policy_id;
	__u8 family;    /* MIS_AF_* */
	__u8 protocol;  /* IPPROTO_TCP (6), IPPROTO_UDP (17), 0 = any */
	__u16 port;     /* host byte order, 0 = any */
	__u8 addr[16];  /* network byte order; IPv4 in the first 4 bytes */
};

struct mis_net_value {
	__u32 action;   /* MIS_DECISION_* */
	__u32 rule_id;  /* user space's identifier, for audit */
};

/*
 * Unix socket names (sun_path), the key of two hash maps: mis_unix_rules (scope = policy id: the
 * policy's [[unix]] rules, value struct mis_net_value) and mis_unix_own (scope = cgroup id: names
 * a socket of that cgroup listens on). A path name is its bytes up to the first NUL; an abstract
 * name keeps its leading NUL and every byte the caller's address length gives it. Unused bytes
 * of name are 0, so equal names are equal keys.
 */
#define MIS_UNIX_NAME_MAX 108 /* sizeof(((struct sockaddr_un *)0)->sun_path) */

struct mis_unix_key {
	__u64 scope;
	__u32 len;                     /* bytes of name in use, 1..MIS_UNIX_NAME_MAX */
	char name[MIS_UNIX_NAME_MAX];
};

/*
 * Exec backstop: (dev, inode) of files a policy forbids executing, checked after the exec
 * committed (tp_btf/sched_process_exec) in case a path check upstream raced. dev is the kernel's
 * internal encoding (MAJOR << 20 | MINOR), not stat's st_dev.
 */
struct mis_exec_key {
	__u64 dev;
	__u64 ino;
	__u32 policy_id;
	__u32 pad; /* must be 0 */
};

/* An exec the seccomp supervisor decided, by the thread that asked (mis_exec_approved, keyed by
 * tid): what the kernel must end up running — the binary itself, or for a #! script the last
 * interpreter in its chain. The supervisor answers CONTINUE, so the kernel resolves the path
 * again; whatever it really executes is compared with this. */
struct mis_exec_approval {
	__u64 dev;       /* kernel dev_t (MAJOR << 20 | MINOR), as inode->i_sb->s_dev */
	__u64 ino;
	__u64 cgroup_id; /* whose approval it is: a reused tid in another cgroup is not bound by it */
};

/*
 * Path globs decided in the kernel (include/mis_path_match.h). User space compiles every glob
 * rule of a policy into position automata (src/Mis.Enforcer/Policy/PathAutomaton.cs): each
 * pattern is a run of positions inside one 64-bit word of positions, a position being "the
 * pattern is matched up to here". Reading one byte c of the path moves every active position p
 * with adv[c] bit p set to p + 1 and keeps every one with loop[c] bit p set; then positions with
 * eps1 (eps3) set also activate p + 1 (p + 3) without reading, repeated MIS_GLOB_CLOSURE_STEPS
 * times. A rule matches when its final position is active at the end of the path, or (a tree
 * rule, a pattern ending in "/" "**") when it is active and the next byte is '/'. start is the set active before
 * the first byte, closure included. Patterns never straddle words, so words are independent.
 */
#define MIS_PATH_MAX          256 /* bytes of a path (with its NUL) the kernel matches */
#define MIS_GLOB_WORDS        16  /* words of positions per policy: 1024 positions */
#define MIS_GLOB_CLOSURE_STEPS 4  /* longest chain of positions left without reading */
#define MIS_GLOB_NO_RULE      255 /* rule[] of a position that is not a final one */
#define MIS_PATH_RULES_SLOTS  1024 /* per CPU, in mis_path_rules (a power of two) */

struct mis_glob_key {
	__u32 policy_id;
	__u32 word; /* 0 .. MIS_GLOB_WORDS - 1 */
};

struct mis_glob_word {
	__u64 adv[256];
	__u64 loop[256];
	__u64 start;
	__u64 eps1;
	__u64 eps3;
	__u64 final;
	__u64 tree;  /* final positions of tree rules */
	__u8 rule[64]; /* the policy's file rule index (0..254) of each final position */
};

/* Context of the mis_glob_match program (BPF_PROG_TEST_RUN): the kernel's matcher, run on a
 * path user space gives, so tests hold it to the C# patterns byte for byte. */
struct mis_glob_match_ctx {
	__u32 policy_id;        /* in */
	__u32 words;            /* out: words of positions the policy has */
	__u64 matched[4];       /* out: bit r set when file rule r matched the path */
	char path[MIS_PATH_MAX]; /* in: NUL-terminated */
};

/*
 * The in-kernel file backend (include/mis_lsm.h): a policy's file rules as the BPF LSM hooks
 * decide opens and execs with them, under the policy id. Rule r of the policy is rules[r] of its
 * mis_file_policy; a set of rules is 256 bits (struct mis_rule_set), bit r for rule r.
 */
#define MIS_FILE_RULES_MAX 255 /* rule numbers 0..254; 255 is MIS_GLOB_NO_RULE */

struct mis_rule_set {
	__u64 bits[4];
};

/* mis_file_policies value, keyed by policy id. */
struct mis_file_policy {
	__u32 rules;           /* file rules in decision order */
	__u32 default_action;  /* MIS_DECISION_* when nothing matches at DEFCON 5 and 4 */
	__u32 exec_allow_list; /* 1: only what an allow rule names may run, nothing written during the run */
	__u32 generation;      /* new at every write of the policy's rules: older mis_path_rules entries are stale */
	__u32 inode_rules;     /* its mis_inode_rules entries (written before this entry): 0 spares the lookups */
	__u32 pad;
	struct mis_rule_set applies_read;  /* the rules that apply to opens for reading */
	struct mis_rule_set applies_write; /* ... for writing (creating, truncating) */
	struct mis_rule_set applies_exec;  /* ... to execs */
	__u8 action[MIS_FILE_RULES_MAX + 1]; /* each rule's MIS_DECISION_* */
};

/* mis_exact_paths key: a concrete pattern (no wildcard), NUL-padded. */
struct mis_exact_key {
	__u32 policy_id;
	char path[MIS_PATH_MAX];
};

/* mis_path_rules value: one slot of a per-CPU cache of what a policy's path rules (exact, then
 * globs) say of one path. They depend on the path's bytes and the policy's rules alone, so a path
 * opened again costs a compare instead of a pass of every glob. */
struct mis_path_rules_slot {
	__u64 seq;                 /* odd while the slot is being written (a writer's preemption shows) */
	__u32 policy_id;
	__u32 generation;          /* the mis_file_policy.generation the rules were computed under */
	__u32 concrete;            /* 1: an exact rule names the path (the file is followed by identity) */
	__u32 pad;
	struct mis_rule_set rules; /* every rule that names the path, exact or glob */
	char path[MIS_PATH_MAX];   /* NUL-padded: compared whole */
};

/* mis_file_objects key: a file (kernel dev_t, inode) that rules follow by identity (a hard link
 * or another name of a file they matched by path); value: those rules (struct mis_rule_set). */
struct mis_object_key {
	__u64 dev;
	__u64 ino;
	__u32 policy_id;
	__u32 pad;
};

/* mis_inode_rules key: the seed's AddRule shape (dev, inode, syscall; 0 = any syscall). User
 * space stores, for each key, the action the newest rule that applies to it gives. */
struct mis_inode_key {
	__u64 dev;
	__u64 ino;
	__u32 policy_id;
	__u32 syscall;
};

/* Per-CPU counters (mis_stats array index). */
enum mis_stat {
	MIS_STAT_RINGBUF_DROPS = 0, /* events lost because the ring buffer was full */
	MIS_STAT_KILL_SIGNALS = 1,  /* SIGKILLs sent from the kernel */
	MIS_STAT_VIOLATIONS = 2,    /* denials through the state machine, learning mode included */
	MIS_STAT_ESCALATIONS = 3,   /* DEFCON levels lost (5 -> 3 in one step counts 2) */
	MIS_STAT_COUNT = 4,
};

#endif /* MIS_SHARED_H */
