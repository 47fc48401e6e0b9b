/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Network decisions for the cgroup socket hooks (sock_create, connect4/6, sendmsg4/6).
 *
 * Rules name TCP or UDP; they hold for every IP protocol a socket can use. MPTCP connects like
 * TCP (its socket's protocol is 262) and is matched as TCP. Every other AF_INET/AF_INET6
 * protocol is refused when its socket is created, because the connect/sendmsg hooks do not see
 * all of its traffic: UDP-Lite's connect() skips the connect hooks (udplite_prot has no
 * pre_connect; measured on 6.18: a `udp` deny rule stopped its sendto but not connect+send),
 * ping sockets (ICMP/ICMPv6) have no sendmsg hook, SCTP has paths of its own.
 *
 * Order: an explicit rule decides (allow, deny, or trace = allow and report). Without a rule,
 * the operation is allowed above the cgroup's net_lockdown_level (default 3) and denied at or
 * below it. Loopback counts as outbound: a workload reaching 127.0.0.1 reaches the host's
 * services (databases, container daemons, MIS's own control plane), which is exactly what a
 * locked-down workload must not do; allow it with an explicit rule where wanted.
 * IPv4-mapped IPv6 destinations (::ffff:a.b.c.d) are matched as the IPv4 address, so a
 * dual-stack socket cannot dodge an IPv4 rule. Learning mode does not open the network: a
 * denied operation is still denied, it only does not escalate (see mis_violation).
 */
#ifndef MIS_NET_H
#define MIS_NET_H

#include "mis_defcon.h"

#define MIS_IPPROTO_TCP     6
#define MIS_IPPROTO_UDP     17
#define MIS_IPPROTO_MPTCP   262

/*
 * The rule protocol (MIS_IPPROTO_TCP or _UDP) of a socket's IP protocol; 0 for a protocol the
 * hooks cannot decide. C# twin: NetProtocols.RuleProtocol (src/Mis.Enforcer/Policy/PolicyRules.cs).
 */
static __always_inline __u8 mis_rule_protocol(__u32 protocol)
{
	switch (protocol) {
	case MIS_IPPROTO_TCP:
	case MIS_IPPROTO_MPTCP:
		return MIS_IPPROTO_TCP;
	case MIS_IPPROTO_UDP:
		return MIS_IPPROTO_UDP;
	default:
		return 0;
	}
}

/* The destination of a connect/sendmsg, normalised for rule lookups. */
struct mis_dest {
	__u8 family;   /* MIS_AF_* */
	__u8 protocol; /* the rule protocol (mis_rule_protocol), never the raw 16-bit one */
	__u16 port;    /* host order */
	__u8 addr[16];
};

static const char mis_fmt_v4[] = "%pI4:%u";
static const char mis_fmt_v6[] = "[%pI6]:%u";

static __always_inline const struct mis_net_value *
mis_net_lookup_one(__u32 policy_id, const struct mis_dest *d, __u8 protocol, __u16 port)
{
	struct mis_net_key key = {
		.prefixlen = MIS_NET_FIXED_PREFIX + 128,
		.policy_id = policy_id,
		.family = d->family,
		.protocol = protocol,
		.port = port,
	};

	__builtin_memcpy(key.addr, d->addr, sizeof(key.addr));
	return bpf_map_lookup_elem(&mis_net_rules, &key);
}

/* The most specific rule: exact protocol and port first, wildcards last. NULL: no rule. */
static __always_inline const struct mis_net_value *mis_net_lookup(__u32 policy_id, const struct mis_dest *d)
{
	const struct mis_net_value *v;

	v = mis_net_lookup_one(policy_id, d, d->protocol, d->port);
	if (!v)
		v = mis_net_lookup_one(policy_id, d, d->protocol, 0);
	if (!v)
		v = mis_net_lookup_one(policy_id, d, 0, d->port);
	if (!v)
		v = mis_net_lookup_one(policy_id, d, 0, 0);
	return v;
}

static __always_inline void mis_net_format(char *target, const struct mis_dest *d)
{
	__u64 args[2] = { (__u64)(unsigned long)d->addr, d->port };

	if (d->family == MIS_AF_INET)
		bpf_snprintf(target, 256, mis_fmt_v4, args, sizeof(args));
	else
		bpf_snprintf(target, 256, mis_fmt_v6, args, sizeof(args));
}

/* What the rules (or, without one, the lockdown) say about `d` for the cgroup, decay applied
 * by the caller: MIS_DECISION_ALLOW, _DENY or _TRACE. */
static __always_inline __u32 mis_net_action(const struct mis_cgroup_state *s, const struct mis_dest *d)
{
	const struct mis_net_value *rule = mis_net_lookup(s->policy_id, d);

	if (rule)
		return rule->action;
	return mis_level(s) <= s->config.net_lockdown_level ? MIS_DECISION_DENY : MIS_DECISION_ALLOW;
}

/*
 * Whether the socket hooks may signal the current task: bpf_send_signal is refused to cgroup
 * programs before Linux 6.x (Debian 12's 6.1 among them). Set by the loader before load
 * (KernelEnforcer.Open, from libbpf's helper probe); read-only, so where it is 0 the verifier
 * drops the call instead of refusing the program. Alone in its section: at offset 0.
 */
const volatile __u32 mis_sock_may_signal SEC(".rodata.mis_sock") = 1;

/*
 * Counts one denied network operation of the current task (event `e`, target filled, may be
 * NULL) and returns 0, the hooks' "deny". DEFCON 1: this task dies now where the hook may
 * signal it (otherwise at the entry of its next syscall, by sys_enter, which lets that syscall
 * run); user space kills the rest of the cgroup on the KILL event.
 */
static __always_inline int mis_net_deny(struct mis_cgroup_state *s, __u64 now,
					const struct mis_actor *actor, __u32 op, struct mis_event *e)
{
	mis_violation(s, now, actor, op, e);
	if (mis_sock_may_signal && mis_must_kill(s))
		mis_kill_current();
	return 0;
}

/*
 * Decides one outbound operation of the current task. Returns 1 to allow, 0 to deny (the
 * syscall fails with EPERM). Tasks of unmanaged cgroups are allowed untouched (the hook is
 * attached only to managed cgroups; this covers a cgroup being unmanaged right now).
 */
static __always_inline int mis_net_decide(const struct mis_dest *d, __u32 op)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct mis_cgroup_state *s = bpf_map_lookup_elem(&mis_cgroups, &cgroup_id);
	struct mis_actor actor;
	struct mis_event *e;
	__u32 action;
	__u64 now;

	if (!s)
		return 1;
	now = bpf_ktime_get_ns();
	mis_actor_current(&actor);
	mis_decay(s, now, &actor);

	action = mis_net_action(s, d);

	if (action == MIS_DECISION_TRACE) {
		e = mis_trace_event(s, now, &actor, op);
		if (e) {
			mis_net_format(e->target, d);
			bpf_ringbuf_submit(e, 0);
		}
		return 1;
	}
	if (action != MIS_DECISION_DENY)
		return 1;

	e = mis_event_reserve_full();
	if (e)
		mis_net_format(e->target, d);
	return mis_net_deny(s, now, &actor, op, e);
}

static const char mis_fmt_socket[] = "socket(family %u, type %u, protocol %u)";

/*
 * Decides the creation of an AF_INET/AF_INET6 socket by the current task: allowed when the
 * hooks can decide what it sends (mis_rule_protocol), refused and counted as a denied connect
 * otherwise. Learning mode records the violation but still refuses, as for every network deny.
 */
static __always_inline int mis_net_decide_socket(__u32 family, __u32 type, __u32 protocol)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct mis_cgroup_state *s;
	struct mis_actor actor;
	struct mis_event *e;
	__u64 now;

	if (mis_rule_protocol(protocol))
		return 1;
	s = bpf_map_lookup_elem(&mis_cgroups, &cgroup_id);
	if (!s)
		return 1;
	now = bpf_ktime_get_ns();
	mis_actor_current(&actor);
	mis_decay(s, now, &actor);
	e = mis_event_reserve_full();
	if (e) {
		__u64 args[3] = { family, type, protocol };

		bpf_snprintf(e->target, sizeof(e->target), mis_fmt_socket, args, sizeof(args));
	}
	return mis_net_deny(s, now, &actor, MIS_OP_CONNECT, e);
}

#endif /* MIS_NET_H */
