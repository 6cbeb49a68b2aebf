"""The command line's user errors: exit status 2 and one line naming the problem (no traceback).

The CLI runs in-process (``latentkit.cli.main([...])``); stderr is captured.
"""

from __future__ import annotations

import pytest
from conftest import tiny_grid, write_config

from latentkit.cli import main
from latentkit.grid import ExperimentConfig, config_path, load_config

TINY = tiny_grid("tiny_cli")


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("latentkit: error: ") and "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture
def tiny_yaml(tmp_path):
    return write_config(tmp_path / "tiny.yaml", ExperimentConfig.from_dict(TINY))


def test_malformed_yaml_names_the_file(capsys, tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: x\nnetworks: [alexnet\nmethods: {a: 1\n")
    code, _, err = run_cli(capsys, "run", str(p))
    assert_one_line_error(code, err, str(p), "not valid YAML")


def test_malformed_json_names_the_file(capsys, tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('{"name": "x",')
    code, _, err = run_cli(capsys, "plan", str(p))
    assert_one_line_error(code, err, str(p), "not valid JSON")


def test_missing_config_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "run", str(tmp_path / "nope.yaml"))
    assert_one_line_error(code, err, "nope.yaml", "does not exist")


def test_out_pointing_at_a_file(capsys, tmp_path, tiny_yaml):
    target = tmp_path / "results.txt"
    target.write_text("not a folder")
    code, _, err = run_cli(capsys, "run", str(tiny_yaml), "--out", str(target), "--quiet")
    assert_one_line_error(code, err, "--out", str(target), "existing file")
    assert target.read_text() == "not a folder"


@pytest.mark.parametrize("value", ["-1", "0", "two"])
def test_threads_must_be_a_positive_integer(capsys, tiny_yaml, value):
    code, _, err = run_cli(capsys, "run", str(tiny_yaml), "--threads", value, "--quiet")
    assert_one_line_error(code, err, "--threads must be an integer >= 1")


def test_unknown_config_key(capsys, tmp_path):
    p = write_config(tmp_path / "c.json", {**TINY, "epochs": 3})
    code, _, err = run_cli(capsys, "run", str(p))
    assert_one_line_error(code, err, "unknown config key(s) ['epochs']")


def test_renamed_scale_key(capsys, tmp_path):
    p = write_config(tmp_path / "old.yaml", {**TINY, "scale": "quick"})
    code, _, err = run_cli(capsys, "plan", str(p))
    assert_one_line_error(code, err, "'scale' was renamed to 'preset'")


def test_bad_value_and_unknown_command(capsys, tmp_path):
    p = write_config(tmp_path / "bad.yaml", {**TINY, "trials": 0})
    code, _, err = run_cli(capsys, "run", str(p))
    assert_one_line_error(code, err, "trials must be >= 1")
    code, _, err = run_cli(capsys, "fly")
    assert_one_line_error(code, err, "fly")
    code, _, err = run_cli(capsys, "plan", "quick", "--tflops", "-3")
    assert_one_line_error(code, err, "--tflops")


def test_report_of_a_missing_grid(capsys, tmp_path):
    code, _, err = run_cli(capsys, "report", str(tmp_path / "none"))
    assert_one_line_error(code, err, "results.csv not found")


def test_plan_prints_cells_rows_hours_and_disk(capsys):
    from latentkit.grid import cost_table, grid_size, network_costs

    code, out, err = run_cli(capsys, "plan", "quick", "--tflops", "50")
    assert code == 0, err
    quick = load_config("quick")
    size = grid_size(quick)
    assert (
        f"{size['cells']} cells" in out and f"{size['result rows (cells x epochs 0..T)']} result rows" in out
    )
    assert "GPU-hours at 50 TFLOP/s" in out and "Disk: dense-network cache" in out
    est = cost_table(quick, network_costs(quick.networks, preset="quick", num_classes=100), tflops=50.0)
    assert f"{est.loc['all', 'total, cached engine']:.3g} GPU-hours" in out


def test_shipped_config_by_name_or_path():
    assert load_config("quick").to_dict() == load_config(config_path("quick")).to_dict()
    assert load_config("paper").preset == "paper"
