"""GCP's catalog: hosts and GPUs priced apart, combined into offers (`gcp_offers`).
"""

from __future__ import annotations

from clouds.catalog.rows import Gpu, Problems, Row, gpu_subject, make_offer, resolve_gpu, standalone_markets
from placement.model import Offer

# GCP, from SkyPilot 0.14.1 sky/catalog/gcp_catalog.py. Machine types with GPUs built in
# (_ACC_INSTANCE_TYPE_DICTS): machine type -> (catalog accelerator name, count).
_GCP_FIXED_HOSTS: dict[str, tuple[str, int]] = {
    **{f"a2-highgpu-{n}g": ("A100", n) for n in (1, 2, 4, 8)},
    "a2-megagpu-16g": ("A100", 16),
    **{f"a2-ultragpu-{n}g": ("A100-80GB", n) for n in (1, 2, 4, 8)},
    **{f"g2-standard-{cpus}": ("L4", 1) for cpus in (4, 8, 12, 16, 32)},
    "g2-standard-24": ("L4", 2),
    "g2-standard-48": ("L4", 4),
    "g2-standard-96": ("L4", 8),
    **{f"a3-highgpu-{n}g": ("H100", n) for n in (1, 2, 4, 8)},
    "a3-megagpu-8g": ("H100-MEGA", 8),
    "a3-ultragpu-8g": ("H200", 8),
    "a4-highgpu-8g": ("B200", 8),
    **{f"g4-standard-{cpus}": ("RTXPRO6000", n) for n, cpus in ((1, 48), (2, 96), (4, 192), (8, 384))},
}
_GCP_FIXED_GPUS = frozenset(accelerator for accelerator, _ in _GCP_FIXED_HOSTS.values())
# Families of GPU machine types; one not in _GCP_FIXED_HOSTS (a3-edgegpu-8g, *-nolssd) is a
# GPU machine SkyPilot cannot launch with its GPUs, so it is no CPU offer either.
_GCP_GPU_FAMILIES = ("a2-", "a3-", "a4-", "g2-", "g4-")
# Other GPUs attach to N1 hosts (_DEFAULT_HOST_VM_FAMILY): GPU -> count -> largest host
# (vCPUs, memory GiB) it attaches to (_NUM_ACC_TO_MAX_CPU_AND_MEMORY), and the zones where
# the limit is lower (check_accelerator_attachable_to_host).
_GCP_N1_HOSTS = ("n1-standard-", "n1-highmem-", "n1-highcpu-")
_GCP_ATTACHABLE: dict[str, dict[int, tuple[float, float]]] = {
    "K80": {1: (8, 52), 2: (16, 104), 4: (32, 208), 8: (64, 208)},
    "V100": {1: (12, 78), 2: (24, 156), 4: (48, 312), 8: (96, 624)},
    "T4": {1: (48, 312), 2: (48, 312), 4: (96, 624)},
    "P4": {1: (24, 156), 2: (48, 312), 4: (96, 624)},
    "P100": {1: (16, 104), 2: (32, 208), 4: (96, 624)},
}
_GCP_ZONE_LIMITS: dict[tuple[str, int, str], tuple[float, float]] = {
    ("K80", 8, "asia-east1-a"): (64, 416),
    ("K80", 8, "us-east1-d"): (64, 416),
    **{("P100", 4, zone): (64, 208) for zone in ("us-east1-c", "europe-west1-d", "europe-west1-b")},
}


def gcp_offers(rows: list[Row], label: str, problems: Problems) -> list[tuple[Offer, int]]:
    """GCP prices GPUs apart from hosts: a GPU VM is a host row plus a GPU row of its zone.

    As SkyPilot's `gcp_catalog.list_accelerators` combines them: A100, A100-80GB, L4, H100,
    H100-MEGA, H200 and B200 come with their own machine types (`_GCP_FIXED_HOSTS`); other
    GPUs attach to every N1 host of the zone within the GPU count's vCPU and memory limit. A
    combined offer has a spot price when both rows have one.
    """
    out: list[tuple[Offer, int]] = []
    gpu_rows: dict[tuple[str, str | None, str, float], tuple[Row, Gpu]] = {}
    n1_hosts: dict[tuple[str, str | None], list[Row]] = {}
    fixed_hosts: list[Row] = []
    for row in rows:
        if not row.instance:
            report = problems.reporter(label, gpu_subject(row), row)
            gpu = resolve_gpu("gcp", row, report)
            if gpu is not None:
                gpu_rows[row.region, row.zone, row.accelerator, gpu.count] = (row, gpu)
            continue
        report = problems.reporter(label, row.instance, row)
        if row.accelerator or not row.instance.startswith(_GCP_GPU_FAMILIES):
            gpu = resolve_gpu("gcp", row, report)
            if gpu is not None:
                out += [(make_offer("gcp", row, row.instance, gpu, spot, price), row.line)
                        for spot, price in standalone_markets(row, report)]
            if not row.accelerator and row.instance.startswith(_GCP_N1_HOSTS):
                n1_hosts.setdefault((row.region, row.zone), []).append(row)
        elif row.instance in _GCP_FIXED_HOSTS:
            fixed_hosts.append(row)
        else:
            report("GPU machine type SkyPilot does not map to a GPU; skipped")

    used: set[int] = set()
    for host in fixed_hosts:
        accelerator, count = _GCP_FIXED_HOSTS[host.instance]
        found = gpu_rows.get((host.region, host.zone, accelerator, count))
        if found is None:
            problems.reporter(label, host.instance, host)(f"no {accelerator}:{count} price row in the zone; skipped")
            continue
        used.add(found[0].line)
        out += _combined(label, host, *found, problems)
    for gpu_row, gpu in gpu_rows.values():
        if gpu_row.line in used:
            continue
        report = problems.reporter(label, gpu_subject(gpu_row), gpu_row)
        limits = _GCP_ATTACHABLE.get(gpu.accelerator, {})
        if gpu.accelerator in _GCP_FIXED_GPUS:
            report("no host machine type in the zone; skipped")
        elif gpu.count not in limits:
            report(f"not attachable to N1 hosts in this count (valid: {sorted(limits) or 'none'}); skipped")
        else:
            max_cpus, max_memory = _GCP_ZONE_LIMITS.get((gpu.accelerator, int(gpu.count), gpu_row.zone or ""),
                                                        limits[int(gpu.count)])
            hosts = [h for h in n1_hosts.get((gpu_row.region, gpu_row.zone), [])
                     if (h.vcpus or 0) <= max_cpus and (h.memory_gb or 0) <= max_memory]
            if not hosts:
                report("no N1 host it attaches to in the zone; skipped")
            for host in hosts:
                out += _combined(label, host, gpu_row, gpu, problems, attached=True)
    return out


def _combined(label: str, host: Row, gpu_row: Row, gpu: Gpu, problems: Problems,
              attached: bool = False) -> list[tuple[Offer, int]]:
    """Offers for one GCP host with one GPU row's GPUs."""
    id_name = f"{host.instance}+{gpu.accelerator}:{gpu.count:g}" if attached else host.instance
    out = []
    for spot, host_price, gpu_price in ((False, host.price, gpu_row.price), (True, host.spot, gpu_row.spot)):
        if host_price is None or gpu_price is None or host_price < 0 or gpu_price <= 0:
            continue
        if host_price == 0:
            problems.reporter(label, host.instance, host)(
                f"host price 0.0; priced from the {gpu.accelerator}:{gpu.count:g} row alone (a lower bound)")
        out.append((make_offer("gcp", host, id_name, gpu, spot, round(host_price + gpu_price, 6)), host.line))
    return out
