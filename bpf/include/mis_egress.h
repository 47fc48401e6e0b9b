/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Traffic the connect/sendmsg hooks never saw: a connection the workload accepted after listen()
 * (its SYN-ACK and data), a connection (TCP, or connected UDP) opened before the cgroup fell to
 * the lockdown level, and packets whose wire destination is not the socket's peer (an IPv6
 * routing header). Every IP packet a managed cgroup's socket sends is judged by the same rules
 * and lockdown as a connect to its wire destination (mis_net_action); a denied one is dropped.
 * So a peer the rules deny never completes a handshake with a workload listener, and nothing
 * more leaves on a connection to a peer that is denied now. Packets the hooks already allowed
 * meet the same rules here again and pass.
 *
 * Each dropped flow counts one violation (op send), however many packets (retransmitted
 * SYN-ACKs, data) are dropped: mis_egress_seen remembers what was counted.
 */
#ifndef MIS_EGRESS_H
#define MIS_EGRESS_H

#include "mis_net.h"

#define MIS_ETH_P_IP   0x0800
#define MIS_ETH_P_IPV6 0x86DD

/* One counted flow: the cgroup, the peer, the protocol and the local port. Kernel-internal. */
struct mis_egress_key {
	__u64 cgroup_id;
	__u8 family;
	__u8 protocol;
	__u16 port;       /* peer port, host order */
	__u16 local_port; /* host order */
	__u16 pad2;
	__u8 addr[16];
};

/* LRU: an evicted entry only means a later packet of that connection counts once more. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct mis_egress_key);
	__type(value, __u32);
} mis_egress_seen SEC(".maps");

/*
 * Reads the wire destination of an outgoing packet (cgroup_skb data starts at the network
 * header): address, and for TCP and UDP the destination and source port. Returns 0 for what is
 * not IP. An IPv6 packet whose next header is an extension header (a routing header moves the
 * wire destination away from the socket's peer) is judged by its address alone: protocol and
 * ports 0, so only rules for any protocol and any port apply to it.
 */
static __always_inline int mis_egress_dest(struct __sk_buff *skb, struct mis_dest *d, __u16 *local_port)
{
	__u16 ports[2];
	__u8 proto, vihl;
	__u32 l4;

	if (skb->protocol == bpf_htons(MIS_ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, 0, &vihl, 1) || bpf_skb_load_bytes(skb, 9, &proto, 1) ||
		    bpf_skb_load_bytes(skb, 16, d->addr, 4))
			return 0;
		d->family = MIS_AF_INET;
		l4 = (vihl & 0xf) * 4;
	} else if (skb->protocol == bpf_htons(MIS_ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, 6, &proto, 1) || bpf_skb_load_bytes(skb, 24, d->addr, 16))
			return 0;
		d->family = MIS_AF_INET6;
		/* ::ffff:a.b.c.d on the wire is matched as IPv4, as in the connect hooks. */
		if (!d->addr[0] && !d->addr[1] && !d->addr[2] && !d->addr[3] && !d->addr[4] && !d->addr[5] &&
		    !d->addr[6] && !d->addr[7] && !d->addr[8] && !d->addr[9] && d->addr[10] == 0xff && d->addr[11] == 0xff) {
			d->family = MIS_AF_INET;
			__builtin_memmove(d->addr, d->addr + 12, 4);
			__builtin_memset(d->addr + 4, 0, 12);
		}
		l4 = 40;
	} else {
		return 0;
	}
	*local_port = 0;
	if (proto != MIS_IPPROTO_TCP && proto != MIS_IPPROTO_UDP)
		return 1;
	if (bpf_skb_load_bytes(skb, l4 & 0x7f, ports, sizeof(ports)))
		return 1;
	d->protocol = proto;
	d->port = bpf_ntohs(ports[1]);
	*local_port = bpf_ntohs(ports[0]);
	return 1;
}

/*
 * Decides one outgoing packet of a managed cgroup's socket. Returns 1 to send it, 0 to drop it.
 * Runs in softirq as often as in the sender's context (SYN-ACKs answer an incoming SYN,
 * retransmits come from timers), so the cgroup is the socket's (bpf_skb_cgroup_id), the event
 * names no task, and nothing is signalled here: user space kills the cgroup on the KILL event.
 */
static __always_inline int mis_egress_decide(struct __sk_buff *skb)
{
	__u64 cgroup_id = bpf_skb_cgroup_id(skb);
	struct mis_cgroup_state *s = bpf_map_lookup_elem(&mis_cgroups, &cgroup_id);
	struct mis_egress_key key = {};
	struct mis_actor actor = {};
	struct mis_dest d = {};
	struct mis_event *e;
	__u16 local_port;
	__u32 one = 1;
	__u64 now;

	if (!s || !mis_egress_dest(skb, &d, &local_port))
		return 1;
	now = bpf_ktime_get_ns();
	mis_decay(s, now, &actor);
	if (mis_net_action(s, &d) != MIS_DECISION_DENY)
		return 1; /* trace rules report connects and sends, not every packet */

	key.cgroup_id = cgroup_id;
	key.family = d.family;
	key.protocol = d.protocol;
	key.port = d.port;
	key.local_port = local_port;
	__builtin_memcpy(key.addr, d.addr, sizeof(key.addr));
	/* NOEXIST: of CPUs dropping packets of the same connection at once, one inserts and counts. */
	if (bpf_map_update_elem(&mis_egress_seen, &key, &one, BPF_NOEXIST))
		return 0;
	e = mis_event_reserve_full();
	if (e)
		mis_net_format(e->target, &d);
	mis_violation(s, now, &actor, MIS_OP_SEND, e);
	return 0;
}

#endif /* MIS_EGRESS_H */
