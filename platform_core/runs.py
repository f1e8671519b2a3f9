"""MLflow runs that outlive their process.

A run is started by one process (the tune CLI for a search, a Ray worker for a trial) and ended by it in a
`finally`. If the tracking server is unreachable at that moment, or the process is killed, the run stays
RUNNING forever. Every run the platform starts is tagged with its owner (host + PID + process start time);
`close_orphaned_runs` ends as FAILED the RUNNING runs whose owner no longer exists, and `up` and `tune` call it.
"""

from __future__ import annotations

import os
import socket

import psutil

OWNER_HOST, OWNER_PID, OWNER_STARTED = "platform.owner_host", "platform.owner_pid", "platform.owner_started"


def owner_tags() -> dict[str, str]:
    """Tags naming this process as the owner of a run."""
    return {
        OWNER_HOST: socket.gethostname(),
        OWNER_PID: str(os.getpid()),
        OWNER_STARTED: f"{psutil.Process().create_time():.2f}",
    }


def _owner_gone(tags: dict[str, str]) -> bool:
    if tags.get(OWNER_HOST) != socket.gethostname() or OWNER_PID not in tags:
        return False  # not ours to judge: another machine's or an untagged run
    try:
        proc = psutil.Process(int(tags[OWNER_PID]))
        return f"{proc.create_time():.2f}" != tags.get(OWNER_STARTED) or proc.status() == psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, ValueError):
        return True


def close_orphaned_runs() -> list[str]:
    """End as FAILED every RUNNING run on this host whose owning process is gone. Returns their run ids."""
    from mlflow import MlflowClient

    client = MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    closed = []
    for run in client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'", max_results=1000):
        if _owner_gone(run.data.tags):
            client.set_terminated(run.info.run_id, status="FAILED")
            closed.append(run.info.run_id)
    return closed
