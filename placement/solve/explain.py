"""Why a job is queued, and why a placed job went where it did.

Reasons come from a fixed taxonomy (`ReasonCode`). A job with no feasible
option at all is diagnosed against the raw offers, one filter at a time, so
the reason names the first thing that rules everything out. A feasible job
left queued is diagnosed against the round's final ledger: the limit that
blocks its best option is the reason.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from placement.model import Job, Offer, Reason, ReasonCode, Reservation, Sharing, Tier
from placement.solve.candidates import SignatureOption, fits, job_objective
from placement.solve.costs import Wait
from placement.solve.ledger import CapacityLedger
from policies.model import Policy


class Infeasibility:
    """Why jobs with no feasible option are queued, for one round's offers.

    The first filter that rules out every offer names the reason. The offers are
    indexed by GPU type and tier once, so a job is tested only against offers of
    its own GPU types (not every raw offer), once per class of offers that `fits`
    cannot tell apart (a catalog's zones, identical idle nodes); jobs of the same
    shape (every field the diagnosis reads but hours and budget) share the
    offers worked out for the first of them.
    """

    def __init__(self, offers: tuple[Offer, ...], blocked: frozenset[str], policy: Policy):
        self.offers = offers
        self.blocked = blocked
        self.policy = policy
        self._by_gpu_tier: dict[tuple[str | None, Tier], list[Offer]] | None = None
        self._alike_by: dict[bool, dict[tuple[str | None, Tier], list[tuple[Offer, list[Offer]]]]] = {}
        self._shapes: dict[tuple, Reason | tuple[str, float]] = {}  # a reason, or (shape, the least $/h with room)

    def why(self, job: Job) -> Reason:
        """The first filter that rules out every offer for this job."""
        key = (job.demands, tuple(d.sellers for d in job.demands), job.num_nodes, job.tiers, job.spot_ok,
               job.onprem_only, job.gpu_memory_gb, job.gpu_memory_estimated)
        found = self._shapes.get(key)
        if found is None:
            found = self._shapes[key] = self._diagnose(job)
        if isinstance(found, Reason):
            return found
        shape, cheapest_rate = found
        # x -> x * nodes * hours never decreases, so the least product is the least rate's.
        cheapest = cheapest_rate * job.num_nodes * job.expected_hours
        if job.budget_usd is not None and cheapest > job.budget_usd:
            return Reason(ReasonCode.OVER_BUDGET,
                          f"the cheapest fitting offer costs ${cheapest:,.2f} over {job.expected_hours:g} h, "
                          f"above the job's budget of ${job.budget_usd:,.2f}")
        return Reason(ReasonCode.NO_FEASIBLE_TARGET, f"no offer with room matches {shape}")

    def _index(self) -> dict[tuple[str | None, Tier], list[Offer]]:
        if self._by_gpu_tier is None:
            self._by_gpu_tier = defaultdict(list)
            for offer in self.offers:
                self._by_gpu_tier[(offer.gpu, offer.tier)].append(offer)
        return self._by_gpu_tier

    def _alike(self, by_name: bool) -> dict[tuple[str | None, Tier], list[tuple[Offer, list[Offer]]]]:
        """Each GPU type and tier's offers in classes that `fits` cannot tell apart (one representative each):
        the same on everything it reads of an offer, the name included only for jobs that pin an instance type."""
        if by_name not in self._alike_by:
            alike: dict[tuple[str | None, Tier], dict[tuple, tuple[Offer, list[Offer]]]] = defaultdict(dict)
            for (gpu, tier), offers in self._index().items():
                for offer in offers:
                    key = (offer.sharing, offer.gpu_count, offer.gpu_memory_gb, offer.vcpus, offer.memory_gb,
                           offer.cloud, offer.region, offer.spot, offer.name if by_name else None)
                    found = alike[(gpu, tier)].get(key)
                    if found is None:
                        alike[(gpu, tier)][key] = (offer, [offer])
                    else:
                        found[1].append(offer)
            self._alike_by[by_name] = {k: list(classes.values()) for k, classes in alike.items()}
        return self._alike_by[by_name]

    def _diagnose(self, job: Job) -> Reason | tuple[str, float]:
        """The reason, where the job's shape alone rules every offer out; else the shape's words and the least
        $/h per node of an offer with room (what the job's budget is held against)."""
        policy = self.policy
        index = self._index()
        gpus = sorted({d.accelerator for d in job.demands if d.accelerator})
        shape = " or ".join(f"{d.accelerator}:{d.accelerator_count:g}" if d.accelerator else "CPU"
                            for d in job.demands)
        by_tier = {tier: [o for gpu in gpus for o in index.get((gpu, tier), ())] if gpus else
                   [o for (_, t), offers in index.items() if t is tier for o in offers] for tier in Tier}
        if not any(by_tier.values()):
            sellers = {d.accelerator: d.sellers for d in job.demands if d.accelerator}
            code = ReasonCode.NO_OFFER_SELLS_GPU if all(sellers.values()) else ReasonCode.NO_FEASIBLE_TARGET
            return Reason(code, "; ".join(_not_sold(gpu, sellers[gpu]) for gpu in gpus), scope=",".join(gpus))
        needed = job.gpu_memory_needed(policy.memory.margin)
        if needed is not None and gpus:
            largest = max(o.gpu_memory_gb for offers in by_tier.values() for o in offers)
            if largest < needed:
                margin = (f" (an estimated {job.gpu_memory_gb:g} GB + the policy's {policy.memory.margin:.0%} margin)"
                          if job.gpu_memory_estimated else "")
                return Reason(ReasonCode.INSUFFICIENT_GPU_MEMORY,
                              f"needs {needed:g} GB per GPU{margin}; the largest {'/'.join(gpus)} has {largest:g} GB",
                              scope=",".join(gpus))
        tiers = [t for t in Tier if t in job.tiers and (not job.onprem_only or t is Tier.ONPREM)]
        if not any(by_tier[t] for t in tiers):
            if job.onprem_only:
                return Reason(ReasonCode.RESIDENCY, f"data residency keeps it on-prem, and no on-prem node has {shape}")
            return Reason(ReasonCode.NO_FEASIBLE_TARGET,
                          f"no offer of {shape} in the allowed tiers ({', '.join(sorted(t.value for t in job.tiers))})")
        alike = self._alike(any(d.instance_type is not None for d in job.demands))
        fitting: dict[int, Offer] = {}  # by id(): an offer fitting several demands counts once
        for demand in job.demands:
            for tier in tiers:  # a GPU demand fits only offers of its GPU; a CPU demand may fit any
                keys = [(demand.accelerator, tier)] if demand.accelerator else \
                    [(gpu, tier) for gpu in gpus] if gpus else [k for k in alike if k[1] is tier]
                for key in keys:
                    for offer, members in alike.get(key, ()):
                        if fits(job, demand, offer, policy):
                            fitting.update((id(m), m) for m in members)
        if not fitting:
            return Reason(ReasonCode.NO_FEASIBLE_TARGET,
                          f"no offer matches {shape} with {job.demands[0].cpus:g}+ CPUs, "
                          f"{job.demands[0].memory_gb:g}+ GB memory and the job's pins and spot setting")
        nodes = Counter((o.tier, o.gpu) for o in fitting.values())
        multi_node_ok = [o for o in fitting.values() if o.sharing is Sharing.DEDICATED or o.capacity is None
                         or nodes[(o.tier, o.gpu)] >= job.num_nodes]
        if not multi_node_ok:
            return Reason(ReasonCode.NO_FEASIBLE_TARGET, f"needs {job.num_nodes} nodes of {shape}; fewer exist")
        available = [o for o in multi_node_ok if o.id not in self.blocked and o.capacity != 0]
        if not available:
            return Reason(ReasonCode.WAITING_FOR_CAPACITY,
                          f"every offer of {shape} is full or on cool-down after a failed launch")
        return shape, min(o.job_price_per_hour(job.demands[0]) for o in available)


def in_time(hours: float) -> str:
    """A forecast delay in words: "in 14 min", "in 3.2 h"."""
    return f"in {hours * 60:.0f} min" if hours < 2 else f"in {hours:.1f} h"


def why_reserved(reservation: Reservation) -> Reason:
    gpu = reservation.gpu or "CPU"
    return Reason(ReasonCode.WAITING_FOR_RESERVED_CAPACITY,
                  f"{gpu} node group ({', '.join(reservation.nodes)}) reserved, expected "
                  f"{in_time(reservation.start_hours)}; bursting would cost ${reservation.premium_usd:,.2f} more; "
                  f"only work ending before then may use those nodes", scope=reservation.gpu)


def _not_sold(gpu: str, sellers: tuple[str, ...]) -> str:
    """`tpu-v5e-8 is sold only by GCP, and no GCP TPU offer is in the catalogs`."""
    if not sellers:
        return f"no on-prem node, pool or cloud offers {gpu}"
    kind = "TPU" if gpu.startswith("tpu-") else gpu
    if len(sellers) == 1:
        return f"{gpu} is sold only by {sellers[0]}, and no {sellers[0]} {kind} offer is in the catalogs (nor any node)"
    return (f"{gpu} is sold by {', '.join(sellers)}, and none of their {kind} offers is in the catalogs "
            "(nor any node)")


def why_queued(job: Job, options: list[SignatureOption], queue: float, ledger: CapacityLedger,
               policy: Policy, wait: Wait | None = None) -> Reason:
    """The limit that keeps a feasible job queued: the blocker of its best worthwhile option."""
    ranked = sorted(options, key=lambda o: job_objective(job, o, policy))
    for option in ranked:
        if job_objective(job, option, policy) >= queue:
            break
        blocker = ledger.blocker(job, option)
        if blocker is None:
            continue
        if blocker.code is ReasonCode.WAITING_FOR_CAPACITY and job.onprem_only:
            return Reason(ReasonCode.RESIDENCY, "data residency keeps it on-prem, and on-prem capacity is taken: "
                          + blocker.message, scope=blocker.scope)
        if blocker.code is ReasonCode.WAITING_FOR_CAPACITY:
            return Reason(blocker.code, "outbid by higher-priority or better-fitting work: " + blocker.message,
                          scope=blocker.scope)
        return blocker
    burst = next((o for o in ranked if not o.group.node_count), None)
    if burst is None:
        return Reason(ReasonCode.WAITING_FOR_CAPACITY, "every node that fits is taken", scope=job.demands[0].accelerator)
    premium = job_objective(job, burst, policy) - queue
    if wait is not None and wait.within_max_wait:
        return Reason(ReasonCode.WAITING_FOR_CAPACITY,
                      f"on-prem {wait.gpu or 'CPU'} node group ({', '.join(wait.nodes)}) expected free "
                      f"{in_time(wait.hours)}; bursting to {burst.group.offer.provider} {burst.group.offer.name} "
                      f"would cost ${premium:,.2f} more (waiting: ${wait.delay:,.2f} of delay, then "
                      f"${wait.eventual:,.2f} on-prem)", scope=wait.gpu)
    return Reason(ReasonCode.WAITING_FOR_CAPACITY,
                  f"owned capacity is taken; starting now on {burst.group.offer.provider} {burst.group.offer.name} "
                  f"would cost ${premium:,.2f} more than waiting {policy.expected_wait_hours:g} h is worth",
                  scope=job.demands[0].accelerator)


@dataclass(frozen=True, slots=True)
class Alternative:
    offer: Offer
    objective: float
    dollars: float
    delta_objective: float  # versus the chosen option (or versus waiting, for a queued job)
    blocked_by: Reason | None


def alternatives(job: Job, options: list[SignatureOption], baseline: float, ledger: CapacityLedger | None,
                 policy: Policy, limit: int = 3) -> list[Alternative]:
    """The next best options for a job, cheapest first, with what each would cost more and what blocks it."""
    priced = sorted(options, key=lambda o: job_objective(job, o, policy))
    result = []
    for option in priced[:limit]:
        objective = job_objective(job, option, policy)
        blocker = ledger.blocker(job, option) if ledger is not None else None
        result.append(Alternative(option.group.offer, objective, option.rate * job.expected_hours,
                                  objective - baseline, blocker))
    return result
