"""Real processes, real signals: a killed trial worker and a killed search driver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hadanas.search import open_storage


def _start(tmp: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hadanas", "search", *args], cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _trials(tmp: Path, study: str) -> list[optuna.trial.FrozenTrial]:
    if not (tmp / "hadanas.db").exists():
        return []
    try:
        return optuna.load_study(study_name=study, storage=open_storage(f"sqlite:///{tmp / 'hadanas.db'}")).trials
    except KeyError:
        return []


def _wait_for(pred, proc: subprocess.Popen, timeout: float = 300.0):  # type: ignore[no-untyped-def]
    t0 = time.time()
    while time.time() - t0 < timeout:
        got = pred()
        if got:
            return got
        if proc.poll() is not None:
            pytest.fail(f"the search ended early:\n{proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.5)
    proc.kill()
    pytest.fail("timed out waiting for the search")


@pytest.mark.slow
def test_killed_worker_fails_the_trial_and_retries_it(tmp_path: Path, evidence: Any) -> None:
    proc = _start(tmp_path, "--trials", "3", "--epochs", "6", "--study", "kw", "--max-retries", "2",
                  "--seed", "1")
    try:
        victim = _wait_for(lambda: next((t for t in _trials(tmp_path, "kw") if t.state == TrialState.RUNNING
                                         and "worker_pid" in t.user_attrs), None), proc)
        time.sleep(1.0)  # well inside its training
        os.kill(victim.user_attrs["worker_pid"], signal.SIGKILL)
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    trials = _trials(tmp_path, "kw")
    dead = trials[victim.number]
    assert dead.state == TrialState.FAIL
    assert "worker process died" in dead.user_attrs["fail_reason"]
    retry = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retry) == 1 and retry[0].params == dead.params
    assert retry[0].state == TrialState.COMPLETE and retry[0].user_attrs["attempt"] == 1
    assert retry[0].user_attrs["worker_pid"] != victim.user_attrs["worker_pid"]
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    assert not any(t.state == TrialState.RUNNING for t in trials)
    evidence(f"killed worker: trial {dead.number} FAIL ({dead.user_attrs['fail_reason'][:60]}), retried as "
          f"{retry[0].number}; {len(trials)} trials, 3 complete")


@pytest.mark.slow
def test_killed_driver_resumes_without_losing_or_repeating_trials(tmp_path: Path, evidence: Any) -> None:
    proc = _start(tmp_path, "--trials", "6", "--epochs", "2", "--study", "kd", "--seed", "2")
    try:
        _wait_for(lambda: sum(t.state == TrialState.COMPLETE for t in _trials(tmp_path, "kd")) >= 2
                  and any(t.state == TrialState.RUNNING for t in _trials(tmp_path, "kd")), proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = _trials(tmp_path, "kd")
    done_before = {t.number: t for t in before if t.state == TrialState.COMPLETE}
    stale = [t.number for t in before if t.state == TrialState.RUNNING]
    assert len(done_before) >= 2 and stale

    resumed = subprocess.run([sys.executable, "-m", "hadanas", "search", "--resume", "--trials", "6",
                              "--epochs", "2", "--seed", "2"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "marked failed and queued again" in resumed.stderr
    after = _trials(tmp_path, "kd")
    complete = [t for t in after if t.state == TrialState.COMPLETE]
    assert len(complete) == 6
    for n, t in done_before.items():  # kept, unchanged
        assert after[n].state == TrialState.COMPLETE and after[n].values == t.values
        assert after[n].datetime_complete == t.datetime_complete
    for n in stale:  # reconciled; those that had started are queued again and completed
        assert after[n].state == TrialState.FAIL
        assert "driver stopped" in after[n].user_attrs["fail_reason"]
        if before[n].params:
            # Queued again with the same parameters and run to an end of its own: COMPLETE,
            # or FAIL for a reason of the architecture's (some diverge at this learning rate).
            retried = [t for t in after if t.user_attrs.get("retry_of") == n]
            assert len(retried) == 1 and retried[0].params == before[n].params, (n, retried)
            assert retried[0].user_attrs["attempt"] == 1
            assert retried[0].state == TrialState.COMPLETE or (
                retried[0].state == TrialState.FAIL
                and "driver stopped" not in retried[0].user_attrs["fail_reason"]), retried[0]

    trained = [t.user_attrs["fingerprint"] for t in complete if t.user_attrs["status"] == "trained"]
    assert len(trained) == len(set(trained)), "a completed architecture was trained again"
    assert not any(t.state == TrialState.RUNNING for t in after)
    evidence(f"killed driver: {len(done_before)} complete and {len(stale)} RUNNING at the kill; after --resume "
          f"{len(complete)} complete, {len(done_before)} kept unchanged, {len(stale)} reconciled, "
          f"{len(after)} trials in all")


@pytest.mark.slow
def test_resume_leaves_a_live_drivers_trials_running(tmp_path: Path) -> None:
    # Two drivers on one study: the second one's --resume must not fail the first one's
    # running trial; once the first is killed, its trial is stale and is reconciled.
    from hadanas.search._drivers import DRIVER_KEY
    from hadanas.search._runner import _reconcile_stale

    proc = _start(tmp_path, "--trials", "2", "--epochs", "60", "--max-concurrent", "1", "--study", "live")
    try:
        running = _wait_for(lambda: next((t for t in _trials(tmp_path, "live") if t.state == TrialState.RUNNING
                                          and "worker_pid" in t.user_attrs), None), proc)
        owner = running.system_attrs[DRIVER_KEY]
        assert owner["pid"] == proc.pid and owner["host"] and owner["run"]
        study = optuna.load_study(study_name="live", storage=open_storage(f"sqlite:///{tmp_path / 'hadanas.db'}"))
        assert any(k.startswith("hadanas:beat:") for k in study._storage.get_study_system_attrs(study._study_id))
        assert _reconcile_stale(study) == 0
        assert _trials(tmp_path, "live")[running.number].state == TrialState.RUNNING
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert _reconcile_stale(study) == 1
        after = _trials(tmp_path, "live")
        assert after[running.number].state == TrialState.FAIL
        assert [t.user_attrs.get("retry_of") for t in after if t.state == TrialState.WAITING] == [running.number]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_remote_driver_is_live_while_its_heartbeat_is_young() -> None:
    import time as _time

    from hadanas.search._drivers import BEAT_PREFIX, GRACE_S, driver_alive, driver_identity

    me = driver_identity()
    other = {"host": me["host"] + "-elsewhere", "pid": 1234, "start": 5, "run": "abc"}
    now = _time.time()
    assert driver_alive(other, {BEAT_PREFIX + "abc": now - 5}, me, now)
    assert not driver_alive(other, {BEAT_PREFIX + "abc": now - GRACE_S - 1}, me, now)
    assert not driver_alive(other, {}, me, now)
    assert not driver_alive(None, {}, me, now)  # no owner recorded
    assert driver_alive(me, {}, me, now)  # this run
    assert not driver_alive({**me, "run": "earlier"}, {}, me, now)  # an earlier run of this process
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not driver_alive({**me, "pid": dead.pid, "run": "x"}, {}, me, now)
    assert not driver_alive({**me, "pid": os.getppid(), "start": -1, "run": "x"}, {}, me, now)  # pid reused
    assert driver_alive({**me, "pid": os.getppid(), "start": None, "run": "x"}, {}, me, now)


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signalled_driver_stops_promptly_and_fails_its_running_trials(
        tmp_path: Path, sig: signal.Signals, code: int, word: str, evidence: Any) -> None:
    proc = _start(tmp_path, "--trials", "2", "--epochs", "200", "--max-concurrent", "1", "--study", "sig")
    try:
        _wait_for(lambda: any(t.state == TrialState.RUNNING and "worker_pid" in t.user_attrs
                              for t in _trials(tmp_path, "sig")), proc)
        t0 = time.time()
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
        took = time.time() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, out[-2000:]
    assert f"hadanas: {word}; completed trials are stored" in out
    assert took < 30, f"took {took:.1f} s to stop"
    evidence(f"{sig.name} to a running search: exit {proc.returncode} after {took:.1f} s")
    trials = _trials(tmp_path, "sig")
    assert trials and not any(t.state == TrialState.RUNNING for t in trials)
    assert any(t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") == "the search was interrupted"
               for t in trials)
