"""GPU power curves: the watts a GPU draws at a utilization (cloud-carbon-footprint's shape)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

# cloud-carbon-footprint's GPU power curve, as a share of full-load watts: every row of
# configs/energy/gpu_power_curve_aws_instances_ccf.csv has these ratios (K520 ... A100).
CCF_CURVE_SHAPE = (0.114, 0.3125, 0.7386, 1.0)  # at 0, 10, 50 and 100% utilization
_CURVE_POINTS = (0.0, 0.1, 0.5, 1.0)


@dataclass(frozen=True, slots=True)


class PowerCurve:
    """Watts one GPU draws at 0, 10, 50 and 100% utilization; linear in between."""

    idle_w: float
    at_10_w: float
    at_50_w: float
    at_100_w: float

    @classmethod
    def from_tdp(cls, tdp_w: float) -> PowerCurve:
        """cloud-carbon-footprint's curve shape scaled to a GPU's full-load power."""
        return cls(*(tdp_w * share for share in CCF_CURVE_SHAPE))

    def watts(self, utilization: float) -> float:
        u = min(max(utilization, 0.0), 1.0)
        points = (self.idle_w, self.at_10_w, self.at_50_w, self.at_100_w)
        i = max(bisect.bisect_right(_CURVE_POINTS, u) - 1, 0)
        if i == len(_CURVE_POINTS) - 1:
            return points[-1]
        x0, x1 = _CURVE_POINTS[i], _CURVE_POINTS[i + 1]
        return points[i] + (points[i + 1] - points[i]) * (u - x0) / (x1 - x0)
