"""The service supervisor: bounded, rotated logs and no process left behind when the service dies."""

import subprocess
import sys
import time

import psutil

from platform_core.supervisor import rotate


def test_rotate_keeps_a_bounded_number_of_files(tmp_path):
    log = tmp_path / "svc.log"
    for i in range(5):
        log.write_text(f"generation {i}\n")
        rotate(log, backups=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["svc.log.1", "svc.log.2"]
    assert (tmp_path / "svc.log.1").read_text() == "generation 4\n"


def test_a_chatty_service_log_stays_under_its_cap(tmp_path):
    log = tmp_path / "svc.log"
    chatter = "import sys\nfor i in range(20000): print('line', i, 'x' * 40)\n"
    subprocess.run(
        [sys.executable, "-m", "platform_core.supervisor", str(log), "20000", "2", "--", sys.executable, "-c", chatter],
        check=True, timeout=60,
    )  # fmt: skip
    files = sorted(tmp_path.iterdir())
    assert [p.name for p in files] == ["svc.log", "svc.log.1", "svc.log.2"]
    assert all(p.stat().st_size <= 20000 for p in files)
    assert "line 19999" in log.read_text()  # the newest lines are kept


def test_children_left_by_a_killed_service_are_stopped(tmp_path):
    """The service spawns a worker and is then killed with -9: the supervisor stops the worker too."""
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "platform_core.supervisor", str(tmp_path / "svc.log"), "0", "0", "--",
         sys.executable, "-c", script],
        start_new_session=True,
    )  # fmt: skip
    log = tmp_path / "svc.log"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (log.exists() and log.read_text().strip()):
        time.sleep(0.1)
    worker = int(log.read_text().split()[0])
    service = psutil.Process(supervisor.pid).children()[0]
    service.kill()
    assert supervisor.wait(timeout=30) == 128 + 9
    assert not psutil.pid_exists(worker) or psutil.Process(worker).status() == psutil.STATUS_ZOMBIE
