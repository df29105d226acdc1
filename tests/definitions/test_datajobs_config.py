"""Data-job settings and job keys: each bad value is refused when the file is loaded, naming file, line
and field."""
from __future__ import annotations

import pytest

from batchrun.definitions.config import load_settings
from batchrun.definitions.registry import load_registry
from batchrun.errors import ConfigError

pytestmark = pytest.mark.timeout(10)


def _config(tmp_path, text: str):
    (tmp_path / "configs").mkdir(exist_ok=True)
    (tmp_path / "configs" / "batchrun.yaml").write_text(text)
    return load_settings(cwd=tmp_path, env={})


def test_defaults(tmp_path):
    s = load_settings(cwd=tmp_path, env={})
    assert (s.threads_per_worker, s.preload, s.progress_interval_s, s.max_checkpoint_bytes) == (None, (), 1.0, 65536)


def test_values_are_parsed(tmp_path):
    (tmp_path / "tables.py").write_text("")
    s = _config(tmp_path, "threads_per_worker: 0\npreload: [tables]\nprogress_interval: 250ms\nmax_checkpoint: 1MiB\n")
    assert (s.threads_per_worker, s.preload, s.progress_interval_s, s.max_checkpoint_bytes) == (0, ("tables",), 0.25,
                                                                                                  2**20)


def test_a_negative_thread_cap_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"batchrun.yaml:1: threads_per_worker: must be 0"):
        _config(tmp_path, "threads_per_worker: -1\n")


def test_an_unknown_preload_module_is_refused_with_its_place(tmp_path):
    (tmp_path / "tables.py").write_text("")
    with pytest.raises(ConfigError, match=r"batchrun.yaml:4: preload\[1\]: cannot find module 'no_such_tables'"):
        _config(tmp_path, "workers: 2\npreload:\n  - tables\n  - no_such_tables.sub\n")


def test_a_preload_entry_that_is_no_module_name_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"preload\[0\]: 'not a module' is not a module name"):
        _config(tmp_path, "preload: ['not a module']\n")


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_threads_in_a_job_file_must_be_a_whole_number_of_at_least_one(tmp_path, value):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "big.yaml").write_text(f"name: big\nhandler: m:f\nthreads: {value}\n")
    registry = load_registry(jobs, ("default",))
    assert len(registry.errors) == 1
    assert "big.yaml:3: threads" in str(registry.errors[0]) and "native threads >= 1" in str(registry.errors[0])


def test_threads_in_a_job_file(tmp_path):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "big.yaml").write_text("name: big\nhandler: m:f\nthreads: 4\n")
    assert load_registry(jobs, ("default",)).get("big").threads == 4
