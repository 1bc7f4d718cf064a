"""The shipped alerting rules: promtool's own unit tests, one firing and one quiet case per alert, and only
metrics the service exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from placement import prometheus
from placement.metrics import EXPORTED

DASHBOARDS = Path(__file__).resolve().parent.parent / "configs" / "dashboards"
RULES = yaml.safe_load((DASHBOARDS / "alerts.yml").read_text())
ALERTS = [rule for group in RULES["groups"] for rule in group["rules"] if "alert" in rule]
RECORDED = {rule["record"] for group in RULES["groups"] for rule in group["rules"] if "record" in rule}
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed "
                                    "(Debian: apt-get install prometheus; .ci/run installs it)")


@needs_promtool
def test_promtool_unit_tests_pass():
    result = subprocess.run(["promtool", "test", "rules", "alerts_test.yml"], cwd=DASHBOARDS, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_case_that_fires_and_one_that_does_not():
    cases = yaml.safe_load((DASHBOARDS / "alerts_test.yml").read_text())
    checks = [check for test in cases["tests"] for check in test.get("alert_rule_test", [])]
    assert ALERTS
    for alert in ALERTS:
        mine = [check for check in checks if check["alertname"] == alert["alert"]]
        assert any(check["exp_alerts"] for check in mine), f"{alert['alert']} has no case where it fires"
        assert any(not check["exp_alerts"] for check in mine), f"{alert['alert']} has no case where it is quiet"


def test_rules_use_only_exported_metrics():
    exprs = [rule["expr"] for group in RULES["groups"] for rule in group["rules"]]
    used = {name for expr in exprs for name in re.findall(r"\bray_\w+", expr)}
    assert used and used <= set(EXPORTED), used - set(EXPORTED)
    for expr in exprs:
        for name in re.findall(r"\bplacement:\w+", expr):
            assert name in RECORDED, name


@needs_promtool
def test_the_config_up_writes_is_valid_and_loads_the_rules(tmp_path):
    discovery = tmp_path / "session_x" / "prom_metrics_service_discovery.json"
    discovery.parent.mkdir()
    discovery.write_text('[{"labels": {"job": "ray"}, "targets": ["127.0.0.1:1"]}]')
    config = prometheus.write_config(tmp_path / "prom", discovery)
    loaded = yaml.safe_load(config.read_text())
    assert loaded["scrape_configs"][0]["file_sd_configs"][0]["files"] == [str(discovery)]
    assert loaded["rule_files"] == [str((DASHBOARDS / "alerts.yml").resolve())]
    result = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS) + len(RECORDED)} rules found" in result.stdout
