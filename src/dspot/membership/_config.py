"""Every membership timing in one place, with what each default trades off.

The defaults are tuned for a LAN of 3 to 50 nodes where a round trip takes well under a
millisecond but a lost TCP segment costs a retransmission timeout (at least 200 ms on Linux).
The target is: a crashed node declared dead by everyone in about 2 s (median), and no live
node declared dead at up to 1 % packet loss.
"""

from __future__ import annotations

import math

import attrs

from dspot.env import Mechanism


class MembershipMechanism(Mechanism):
    """What sabotage tests can build a SWIM member without (``NodeEnv.disabled``)."""

    REFUTE = "membership.refute"
    """A member suspected (or declared dead) while alive outbids the rumour (off: it
    cannot clear itself)."""
    DETECTION = "membership.detection"
    """A probe round nobody answered makes its target suspect (off: failures go unnoticed)."""
    INDIRECT_PROBES = "membership.indirect_probes"
    """A target that missed the direct ping is pinged through ``indirect_checks`` others
    (off: one lost ping or ack fails the round)."""
    SUSPICION = "membership.suspicion"
    """A failed probe round makes a member suspect, not dead (off: dead at once)."""
    OBSERVERS_APART = "membership.observers_apart"
    """A :class:`~dspot.membership.VoterView` leaves observers out, so the token ring and
    the blob store never count one (off: a gateway that joined as an observer is counted
    in quorums, ring order and data placement like any member)."""


@attrs.frozen
class MembershipConfig:
    """SWIM timings and fan-outs. Seconds unless said otherwise."""

    probe_interval: float = 0.4
    """How often each node probes one other member. Shorter finds crashes sooner (a crash is
    declared after about one interval until someone probes it, the failed round, and the
    suspicion timeout, itself a multiple of this) at the cost of one ping per interval per
    node; memberlist's LAN default is 1 s. 0.4 s gives a median under 2 s up to 20 nodes."""

    probe_timeout: float = 0.25
    """How long the direct ping may take before indirect probes go out. Must exceed one TCP
    retransmission (200 ms) plus a round trip, or a single lost segment sends indirect probes
    needlessly; must be well below ``probe_interval`` so indirect probes have time to answer."""

    indirect_checks: int = 3
    """Members asked to ping the target on our behalf when the direct ping is late. More
    makes a lossy link between two nodes less likely to look like a failure; each costs two
    round trips. 0 disables indirect probing (as does ``MembershipMechanism.INDIRECT_PROBES``)."""

    suspicion_mult: float = 2.0
    """A suspect is declared dead after ``suspicion_mult * max(1, log10(n)) * probe_interval``
    seconds unless it refutes. Larger means fewer false positives under loss or pauses but
    slower detection; memberlist uses 4 with a 1 s interval (4 s)."""

    gossip_interval: float = 0.1
    """How often pending updates are pushed to ``gossip_fanout`` random members (only when
    there is something to say). Shorter spreads news faster for a few more messages."""

    gossip_fanout: int = 3
    """Members each gossip round goes to."""

    retransmit_mult: int = 4
    """Each update is piggybacked ``retransmit_mult * ceil(log10(n + 1))`` times; more makes
    it likelier to reach everyone before anti-entropy has to repair it."""

    max_piggyback: int = 12
    """Most updates carried by one message."""

    push_pull_interval: float = 5.0
    """Full state exchange with one random live member (anti-entropy). Repairs anything gossip
    missed; shorter converges faster after faults for one state transfer per interval
    (memberlist: 30 s, sized for large clusters)."""

    reconnect_interval: float = 1.0
    """Full state exchange with one random *dead* member, so the two sides of a healed
    partition find each other again (SWIM alone never contacts a member it thinks dead)."""

    join_retry_interval: float = 1.0
    """How often the seeds are tried again until one answers."""

    join_timeout: float = 2.0
    """How long ``Membership`` startup waits for the first successful join before reporting
    itself started anyway (it keeps trying in the background)."""

    rpc_timeout: float = 2.0
    """Deadline of every membership RPC. Longer than the probe timeouts on purpose: a late
    answer still counts while its probe round is open, and an RPC timeout tears down the
    connection under it, which is costly on a lossy link."""

    leave_timeout: float = 1.0
    """How long a graceful leave waits for its announcement to be delivered."""

    def suspicion_timeout(self, cluster_size: int) -> float:
        """Seconds a suspect has to refute before it is declared dead."""
        return (
            self.suspicion_mult * max(1.0, math.log10(max(1, cluster_size))) * (self.probe_interval)
        )

    def retransmits(self, cluster_size: int) -> int:
        """How many times one update is piggybacked."""
        return self.retransmit_mult * max(1, math.ceil(math.log10(cluster_size + 1)))

    def detection_bound(self, cluster_size: int) -> float:
        """Worst case, from a crash, until a member that keeps running declares it dead on its
        own, whatever gossip does: up to one pass of its round robin (one interval per other
        member) before the next probe, the failed round, the suspicion timeout, and one more
        interval for the round that may have been in flight at the crash."""
        return (cluster_size + 2) * self.probe_interval + self.suspicion_timeout(cluster_size)
