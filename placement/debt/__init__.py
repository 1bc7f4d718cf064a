"""Computational debt: GPU-hours allocated to jobs against GPU-hours they used, with energy and carbon.

Pure: allocations and telemetry samples in, figures out; no clock, no I/O.

Integration rule (zero-order hold): a GPU sample's values hold from its time until that
GPU's next sample, for at most `DebtSettings.max_sample_gap_s` (a longer gap is a sampler
outage and counts as unobserved). The last sample of a GPU closes the previous interval
and holds for no time. So over samples t0 < t1 < ... < tn of one GPU:
    utilized GPU-hours = sum_i util_i / 100 * (t_{i+1} - t_i) / 3600     (i < n)
    energy kWh         = sum_i power_i * (t_{i+1} - t_i) / 3.6e6 * PUE

Which GPUs are a job's: those on which a process attributed to its launch handle ran at
any time during its allocation (`clouds.telemetry` attributes processes). From its start
to its end the job owns them; a GPU owned by several jobs at once is split equally.

Per job:
- allocated GPU-hours: GPUs x the allocation's time inside the window;
- observed GPU-hours: the part of that during which its node was sampled;
- utilized GPU-hours: utilization x time over its GPUs (above);
- debt GPU-hours: observed - utilized (what telemetry proves was paid for and unused; equal to
  allocated - utilized when telemetry covers the whole allocation); debt $ = that x the
  allocation's price per GPU-hour;
- energy: measured power over its GPUs; where power is not reported, the GPU's power curve at
  the measured utilization; allocated GPUs it never touched draw the curve's idle power;
  unobserved GPU-time draws the curve at `assumed_utilization`; all times the PUE. Carbon: the
  energy x the allocation's grid intensity.
Per team and per node: the sums over their jobs. Utilization on a node that no job accounts
for (unattributed processes, foreign work) is reported per node apart.

Old samples are folded into per-minute rows (`fold_minutes`, run by the store): each row holds the
seconds its GPU was covered by holds in that minute, from its first covered instant, with the mean
utilization and power over them and the largest memory. Accounting reads a row as one hold of that
length, so allocated and utilized GPU-hours come out as from the raw samples (a row is placed at its
first covered instant, so only an allocation starting or ending inside a minute can shift, by less
than that minute).

The package: `records` (what goes in and out), `power` (power curves), `samples` (holds, per-minute
folding), `flags` (inefficient jobs, recommendations), `accounting` (`account`, `usage_series`). The settings
are the policy's (`policies.debt.DebtSettings`).
"""

from placement.debt.accounting import account, usage_series
from placement.debt.flags import flags_for, smaller_gpu
from placement.debt.power import CCF_CURVE_SHAPE, PowerCurve
from placement.debt.records import (Allocation, DebtReport, Flag, FlagKind, GpuMinute, JobUsage, Recommendation, Usage,
                                    UsageSeries)
from placement.debt.samples import fold_minutes

__all__ = ["Allocation", "CCF_CURVE_SHAPE", "DebtReport", "Flag", "FlagKind", "GpuMinute", "JobUsage", "PowerCurve",
           "Recommendation", "Usage", "UsageSeries", "account", "flags_for", "fold_minutes", "smaller_gpu",
           "usage_series"]
