"""Policy caps (rate caps and day/month budgets) and downscaling settings: validation and error messages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from placement.model import Demand, Job, Offer, ReasonCode, Sharing, Snapshot, Tier
from placement.solve import solve_round
from placement.solve.limits import Accrued, effective_rate_limits, rate_caps
from placement.yamlio import ConfigError
from policies import builtin_policy_names, load_policy
from policies.debt import DebtSettings
from policies.model import CapSpec, Downscale, Policy


def write_policy(tmp_path, text: str):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_a_cap_may_set_any_of_rate_day_and_month():
    assert CapSpec(usd_per_day=240).usd_per_hour is None
    assert CapSpec(usd_per_month=5_000, usd_per_hour=20).usd_per_day is None
    assert CapSpec(usd_per_hour=0).usd_per_hour == 0  # zero: no cloud spend for the scope


def test_a_cap_without_any_limit_is_refused_with_its_line(tmp_path):
    path = write_policy(tmp_path, "name: t\ncaps:\n  teams:\n    nlp: {}\n    cv: {usd_per_hour: 10}\n")
    with pytest.raises(ConfigError) as err:
        load_policy(path)
    text = str(err.value)
    assert f"{path}:4: caps.teams.nlp: a cap must set at least one limit" in text
    assert "usd_per_hour, usd_per_day and/or usd_per_month" in text
    assert "cv" not in text


def test_negative_budgets_and_unknown_cap_fields_are_refused(tmp_path):
    path = write_policy(tmp_path, "name: t\ncaps:\n  global: {usd_per_day: -5}\n  teams:\n"
                                  "    nlp: {usd_per_week: 100}\n")
    with pytest.raises(ConfigError) as err:
        load_policy(path)
    lines = str(err.value).splitlines()
    assert any(line.startswith(f"{path}:3: caps.global.usd_per_day") and "greater than or equal to 0" in line
               for line in lines)
    assert any(line.startswith(f"{path}:5: caps.teams.nlp") and "usd_per_week" in line for line in lines)


def test_a_budget_only_policy_loads_from_a_file(tmp_path):
    path = write_policy(tmp_path, "name: t\ncaps:\n  global: {usd_per_month: 100000}\n  teams:\n"
                                  "    nlp: {usd_per_hour: 50, usd_per_day: 800}\n"
                                  "downscale: {hysteresis: 0.1, grace_seconds: 60}\n")
    policy = load_policy(path)
    assert policy.caps.global_.usd_per_month == 100_000 and policy.caps.global_.usd_per_hour is None
    assert policy.caps.teams["nlp"].usd_per_day == 800
    assert policy.downscale.hysteresis == 0.1 and policy.downscale.grace_seconds == 60
    assert policy.downscale.checkpoint_grace_seconds == 120  # untouched defaults stay


def test_a_policy_survives_a_dump_and_reload_with_unset_limits():
    policy = Policy.model_validate({"name": "t", "caps": {"teams": {"nlp": {"usd_per_day": 240}}}})
    again = Policy.model_validate(policy.model_dump(mode="json", by_alias=True))
    assert again == policy


@pytest.mark.parametrize("field, value", [("hysteresis", 1.0), ("hysteresis", -0.1), ("grace_seconds", -1),
                                          ("checkpoint_grace_seconds", -1), ("open_ended_hours", 0),
                                          ("time_limit_s", 0)])
def test_downscale_settings_out_of_range(field, value):
    with pytest.raises(ValidationError, match=field):
        Downscale.model_validate({field: value})


def test_downscale_defaults():
    settings = Policy(name="t").downscale
    assert (settings.hysteresis, settings.grace_seconds, settings.checkpoint_grace_seconds) == (0.05, 0.0, 120.0)


@pytest.mark.parametrize("name", builtin_policy_names())
def test_builtin_policies_still_load(name):
    assert load_policy(name).name == name


# ------------------------------------------------------------------------------------------ debt section


def test_the_debt_section_defaults_to_the_accountings_defaults():
    debt = Policy(name="t").debt
    assert DebtSettings.model_validate(debt.model_dump(exclude={"apply_recommendations"})) == DebtSettings()
    assert debt.apply_recommendations is False
    assert all(load_policy(name).debt == debt for name in builtin_policy_names())


def test_debt_thresholds_load_from_a_file(tmp_path):
    path = write_policy(tmp_path, "name: t\ndebt:\n  low_utilization: 0.1\n  recommendable_gpus: [t4, l4]\n"
                                  "  apply_recommendations: true\n")
    debt = load_policy(path).debt
    assert (debt.low_utilization, debt.recommendable_gpus, debt.apply_recommendations) == (0.1, ("T4", "L4"), True)
    assert debt.low_utilization_window_s == DebtSettings().low_utilization_window_s


def test_bad_debt_settings_are_refused_with_their_lines(tmp_path):
    path = write_policy(tmp_path, "name: t\ndebt:\n  low_utilization: 1.5\n  memory_headroom: 0.9\n"
                                  "  recommendable_gpus: [T4, L4x]\n  apply_recommendations: maybe\n  colour: red\n")
    with pytest.raises(ConfigError) as err:
        load_policy(path)
    lines = str(err.value).splitlines()
    expected = {3: ("debt.low_utilization", "less than or equal to 1"),
                4: ("debt.memory_headroom", "greater than"),
                5: ("debt.recommendable_gpus", "Did you mean 'L4'?"),
                6: ("debt.apply_recommendations", "true or false"),
                7: ("debt.colour", "unknown field")}
    for line, (field, words) in expected.items():
        assert any(text.startswith(f"{path}:{line}: {field}") and words in text for text in lines), (line, lines)


# ---------------------------------------------------------------------------------------------- placement

P4D = Offer(id="aws/us-east-1/p4d/od", tier=Tier.PUBLIC, provider="aws", name="p4d.24xlarge",
            sharing=Sharing.DEDICATED, gpu="A100", gpu_count=8, gpu_memory_gb=40, vcpus=96, memory_gb=1152,
            price_per_hour=21.96, capacity=None)  # us-east-1 on-demand price, shared/data/catalogs/aws_vms.csv
TRAIN = Job(id="train", name="train", team="nlp", priority="high", demands=(Demand("A100", 8),))


def test_a_budget_only_cap_sets_no_rate_row_and_its_rate_limit_does():
    policy = Policy.model_validate({"name": "t", "caps": {"teams": {"nlp": {"usd_per_day": 240}}}})
    snap = Snapshot(jobs=(TRAIN,), offers=(P4D,))
    assert solve_round(snap, policy).plan.placement_of("train") is not None
    # $200 of the $240 spent by 20:00 UTC leaves $10/h: a $21.96/h instance no longer fits.
    limits = effective_rate_limits(policy.caps, {"nlp": Accrued(today=200, month=200)}, 20 * 3600.0)
    capped = policy.model_copy(update={"caps": rate_caps(limits)})
    why = solve_round(snap, capped).plan.reason_of("train")
    assert why.code is ReasonCode.OVER_SURGE_CAP and why.scope == "nlp"
