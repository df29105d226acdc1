"""`batchrun map`, `batch`, `batches`, `wait --batch` and `cancel --batch`: real CLI processes, real workers."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from tests.support.project import wait_for

pytestmark = pytest.mark.timeout(90)


def _jsonl(project, name: str, rows: list[dict]) -> str:
    (project.root / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
    return name


def _map(project, *args: str) -> str:
    done = project.cli("map", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _batch_json(project, batch_id: str) -> dict:
    done = project.cli("batch", batch_id, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_map_over_300_inputs_survives_a_worker_killed_mid_batch(project):
    inputs = _jsonl(project, "inputs.jsonl", [{"n": i, "seconds": 0.01} for i in range(300)])
    batch_id = _map(project, "square", "--input", inputs)
    project.supervise("--workers", "2")
    victim = wait_for(lambda: len(project.runs()) >= 60 and project.runs()[-1][1], what="the batch to be under way")
    os.kill(victim, signal.SIGKILL)
    waited = project.cli("wait", "--batch", batch_id, "--timeout", "60s")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    info = _batch_json(project, batch_id)
    assert info["total"] == 300 and info["counts"]["succeeded"] == 300 and info["done"] == 300
    assert info["state"] == "ended" and info["ended_at"] >= info["created_at"]
    done = project.cli("batch", batch_id, "--results", "results.jsonl")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (project.root / "results.jsonl").read_text().splitlines()]
    assert [r["index"] for r in lines] == list(range(300))
    assert [r["result"]["square"] for r in lines] == [i * i for i in range(300)]
    assert all(r["state"] == "succeeded" and len(r["id"]) == 24 for r in lines)
    assert sorted({tag for tag in project.tags_run()}) == sorted(f"square-{i}" for i in range(300))


def test_a_bad_line_refuses_the_whole_map_and_queues_nothing(project):
    rows = [{"n": i} for i in range(10)]
    rows[6] = {"n": "seven"}
    inputs = _jsonl(project, "bad.jsonl", rows)
    done = project.cli("map", "square", "--input", inputs)
    assert done.returncode == 2
    assert "bad.jsonl:7" in done.stderr and "'n'" in done.stderr and "expected int" in done.stderr
    assert project.redis.llen(project.keys.queue("default")) == 0
    assert project.redis.zcard(project.keys.batches) == 0


def test_invalid_json_names_its_line(project):
    (project.root / "broken.jsonl").write_text('{"n": 1}\n{"n": \n')
    done = project.cli("map", "square", "--input", "broken.jsonl")
    assert done.returncode == 2 and "broken.jsonl:2: not valid JSON" in done.stderr


def test_an_empty_input_exits_2(project):
    (project.root / "empty.jsonl").write_text("\n")
    done = project.cli("map", "square", "--input", "empty.jsonl")
    assert done.returncode == 2 and "no inputs" in done.stderr


def test_csv_from_standard_input_is_converted_by_the_declared_types(project):
    csv_text = "n,label,seconds\n3,three,0\n4,,0.001\n"
    done = subprocess.run([sys.executable, "-m", "batchrun", "map", "square", "--input", "-", "--format", "csv"],
                          cwd=project.root, env=project.env, input=csv_text, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    batch_id = done.stdout.strip()
    project.supervise("--until-empty")
    assert project.cli("wait", "--batch", batch_id, "--timeout", "30s").returncode == 0
    results = [json.loads(line) for line in project.cli("batch", batch_id, "--results", "-").stdout.splitlines()]
    assert [r["result"] for r in results] == [{"n": 3, "square": 9, "label": "three"},
                                              {"n": 4, "square": 16, "label": ""}]


def test_a_bad_csv_cell_names_line_and_column(project):
    (project.root / "rows.csv").write_text("n\n1\nx\n")
    done = project.cli("map", "square", "--input", "rows.csv")
    assert done.returncode == 2 and "rows.csv:3: param 'n': expected int" in done.stderr


def test_unknown_batch_exits_5(project):
    for args in (("batch", "0123456789abcdef"), ("wait", "--batch", "0123456789abcdef"),
                 ("cancel", "--batch", "0123456789abcdef")):
        done = project.cli(*args)
        assert done.returncode == 5, args
        assert "no batch" in done.stderr


def test_map_wait_prints_plain_progress_and_exits_1_when_a_job_failed(project):
    inputs = _jsonl(project, "mixed.jsonl", [{"n": 1}, {"n": -1}, {"n": 2}])
    project.supervise()
    done = project.cli("map", "square", "--input", inputs, "--wait")
    assert done.returncode == 1, done.stderr
    assert len(done.stdout.split()) == 1, "only the batch id on standard output"
    assert "ended: 3 jobs, 2 succeeded, 1 failed" in done.stderr
    batch_id = done.stdout.strip()
    waited = project.cli("wait", "--batch", batch_id)
    assert waited.returncode == 1
    results = [json.loads(line) for line in project.cli("batch", batch_id, "--results", "-").stdout.splitlines()]
    assert results[1]["state"] == "failed" and "negative input -1" in results[1]["error"]
    assert "result" not in results[1]


def test_wait_batch_times_out_with_exit_8(project):
    batch_id = _map(project, "square", "--input", _jsonl(project, "one.jsonl", [{"n": 1}]))
    done = project.cli("wait", "--batch", batch_id, "--timeout", "200ms")
    assert done.returncode == 8
    assert "0 of 1 jobs ended" in done.stderr


def test_on_complete_runs_once_with_the_batch_id(project):
    batch_id = _map(project, "square", "--input", _jsonl(project, "few.jsonl", [{"n": i} for i in range(5)]),
                    "--on-complete", "batch-done")
    project.supervise()
    wait_for(lambda: f"batch-done-{batch_id}" in project.tags_run(), what="the callback to run")
    info = _batch_json(project, batch_id)
    assert info["on_complete"] == "batch-done"
    assert project.state(info["on_complete_id"]) == "succeeded"
    assert project.tags_run().count(f"batch-done-{batch_id}") == 1


def test_on_complete_from_the_job_file_and_a_callback_without_batch_id_is_refused(project):
    jobs = project.root / "jobs"
    (jobs / "square-cb.yaml").write_text((jobs / "square.yaml").read_text().replace("name: square", "name: square-cb")
                                         + "on_complete: batch-done\n")
    batch_id = _map(project, "square-cb", "--input", _jsonl(project, "x.jsonl", [{"n": 1}]))
    assert _batch_json(project, batch_id)["on_complete"] == "batch-done"
    done = project.cli("map", "square", "--input", "x.jsonl", "--on-complete", "noop")
    assert done.returncode == 2 and "'batch_id'" in done.stderr


def test_cancel_batch_cancels_its_waiting_jobs(project):
    batch_id = _map(project, "square", "--input", _jsonl(project, "c.jsonl", [{"n": i} for i in range(50)]))
    done = project.cli("cancel", "--batch", batch_id)
    assert done.returncode == 0 and "50 cancelled" in done.stdout
    info = _batch_json(project, batch_id)
    assert info["counts"]["cancelled"] == 50 and info["state"] == "ended"
    assert project.cli("cancel", "--batch", batch_id).returncode == 1, "nothing left to cancel"
    assert project.cli("wait", "--batch", batch_id).returncode == 1


def test_batches_lists_recent_batches_with_progress(project):
    first = _map(project, "square", "--input", _jsonl(project, "a.jsonl", [{"n": 1}]))
    second = _map(project, "square", "--input", _jsonl(project, "b.jsonl", [{"n": 1}, {"n": 2}]))
    done = project.cli("batches", "--json")
    assert done.returncode == 0
    listed = json.loads(done.stdout)
    assert [b["id"] for b in listed] == [second, first]
    assert [(b["total"], b["done"]) for b in listed] == [(2, 0), (1, 0)]
    text = project.cli("batches").stdout
    assert second in text.splitlines()[0] and "0/2" in text


def test_map_wait_on_a_terminal_draws_a_progress_bar(project):
    import pty
    import select

    inputs = _jsonl(project, "tty.jsonl", [{"n": i} for i in range(3)])
    project.supervise()
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "batchrun", "map", "square", "--input", inputs, "--wait"],
                            cwd=project.root, env={**project.env, "COLUMNS": "120", "TERM": "xterm"},
                            stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 30)
            assert ready, "no output from map --wait"
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(leader)
        proc.wait(timeout=30)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode("utf-8", "replace"))
    assert proc.returncode == 0, text
    assert "3/3" in text and "━" in text and "ended: 3 jobs, 3 succeeded" in text


def test_repeated_worker_kills_never_count_a_job_twice(project):
    import psutil

    batch = project.client.map("square", [{"n": i, "seconds": 0.02} for i in range(200)])
    sup = project.supervise("--workers", "2")
    kills = 0
    for threshold in (30, 80, 130):
        wait_for(lambda: len(project.runs()) >= threshold, what=f"{threshold} jobs to start")
        workers = wait_for(lambda: [c for c in psutil.Process(sup.pid).children() if c.name().startswith("python")],
                           what="a worker to kill")
        workers[0].kill()
        kills += 1
    info = batch.wait(timeout_s=60)
    assert info["counts"] == {"succeeded": 200, "failed": 0, "dead": 0, "cancelled": 0} and info["done"] == 200
    results = list(batch.results())
    assert [r["result"]["n"] for r in results] == list(range(200))
    crashes = sum(project.job(r["id"])["crashes"] for r in results)
    assert crashes <= kills
    assert project.processing_total() == 0
