"""Where a Spark run's time goes, from its event log: per SQL execution (one action: its wall time, how much of
it its jobs ran and so how much was planning in the driver), per job and per stage (wall time, task CPU time, the
bytes read, shuffled and spilled), and the totals.

    python benchmarks/spark_events.py <event log file or directory>

The benchmark's Spark child writes one when PYSPARK_SUBMIT_ARGS asks for it (`bench_etl.py --profile`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def summarize(path: str | Path) -> list[str]:
    """Lines of text: each job with its stages, in order."""
    path = Path(path)
    while path.is_dir():  # a log directory: its newest log (Spark 4 writes each log as a directory of parts)
        if not any(p.is_dir() for p in path.iterdir()) and any(p.name.startswith("events_") for p in path.iterdir()):
            break
        path = max(path.iterdir(), key=lambda p: p.stat().st_mtime)
    parts = sorted(path.glob("events_*"), key=lambda p: int(p.name.split("_")[1])) if path.is_dir() else [path]
    jobs: dict[int, dict] = {}
    stages: dict[int, dict] = {}
    stage_job: dict[int, int] = {}
    queries: dict[int, dict] = {}
    for line in (line for part in parts for line in part.read_text().splitlines()):
        event = json.loads(line)
        kind = event["Event"]
        if kind == "SparkListenerJobStart":
            desc = event.get("Properties", {}).get("callSite.short", "")
            query = event.get("Properties", {}).get("spark.sql.execution.id")
            jobs[event["Job ID"]] = {"start": event["Submission Time"], "desc": desc, "stages": event["Stage IDs"],
                                     "query": int(query) if query is not None else None}  # fmt: skip
            for s in event["Stage IDs"]:
                stage_job.setdefault(s, event["Job ID"])
        elif kind == "SparkListenerJobEnd":
            jobs[event["Job ID"]]["end"] = event["Completion Time"]
        elif kind.endswith("SparkListenerSQLExecutionStart"):
            queries[event["executionId"]] = {"start": event["time"], "desc": event.get("description", "")}
        elif kind.endswith("SparkListenerSQLExecutionEnd") and event["executionId"] in queries:
            queries[event["executionId"]]["end"] = event["time"]
        elif kind == "SparkListenerStageCompleted":
            info = event["Stage Info"]
            acc = {a["Name"]: a.get("Value") for a in info.get("Accumulables", [])}
            stages[info["Stage ID"]] = {
                "name": info["Stage Name"],
                "tasks": info["Number of Tasks"],
                "wall": (info["Completion Time"] - info["Submission Time"]) / 1000,
                "cpu": int(acc.get("internal.metrics.executorCpuTime", 0)) / 1e9,
                "run": int(acc.get("internal.metrics.executorRunTime", 0)) / 1000,
                "gc": int(acc.get("internal.metrics.jvmGCTime", 0)) / 1000,
                "in": int(acc.get("internal.metrics.input.bytesRead", 0)),
                "shuffle": int(acc.get("internal.metrics.shuffle.write.bytesWritten", 0)),
                "spill": int(acc.get("internal.metrics.diskBytesSpilled", 0)),
            }
    out = []
    job_wall = {jid: (job.get("end", job["start"]) - job["start"]) / 1000 for jid, job in jobs.items()}
    for qid, q in sorted(queries.items()):
        mine = [jid for jid, job in jobs.items() if job["query"] == qid]
        wall = (q.get("end", q["start"]) - q["start"]) / 1000
        in_jobs = sum(job_wall[j] for j in mine)
        out.append(f"sql {qid:3d} {wall:7.2f}s, {len(mine):2d} jobs {in_jobs:6.2f}s, planning {wall - in_jobs:6.2f}s  "
                   f"{q['desc']}")  # fmt: skip
    for jid, job in sorted(jobs.items()):
        wall = job_wall[jid]
        out.append(f"job {jid:3d} {wall:7.2f}s  sql {job['query']}  {job['desc']}")
        for sid in job["stages"]:
            s = stages.get(sid)
            if s is None:
                continue  # skipped: its output was reused (a cached or already shuffled stage)
            out.append(
                f"    stage {sid:3d} {s['wall']:7.2f}s wall, tasks {s['tasks']:3d}: run {s['run']:6.1f}s cpu "
                f"{s['cpu']:6.1f}s gc {s['gc']:5.1f}s; in {s['in'] / 2**20:6.0f} MiB, shuffle "
                f"{s['shuffle'] / 2**20:6.1f} MiB, spill {s['spill'] / 2**20:6.0f} MiB  {s['name']}"
            )
    if jobs:
        first, last = min(j["start"] for j in jobs.values()), max(j.get("end", j["start"]) for j in jobs.values())
        out.append(f"total: {len(queries)} SQL executions, {len(jobs)} jobs, {sum(job_wall.values()):.2f}s in jobs, "
                   f"{(last - first) / 1000:.2f}s from the first job's start to the last one's end")  # fmt: skip
    return out


if __name__ == "__main__":
    print("\n".join(summarize(sys.argv[1])))
