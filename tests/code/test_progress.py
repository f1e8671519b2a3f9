"""platform_core/progress.py: a stage run alongside another (the demo's second search during `serve`) shows no
live display of its own and keeps its result lines for later; every other thread prints as before."""

from __future__ import annotations

import threading

from platform_core import progress


def test_a_held_thread_shows_nothing_and_keeps_its_result_lines(capsys):
    with progress.held() as lines:
        with progress.progress_bar("a search", total=2) as advance:
            advance()
            advance()
        with progress.step("a step"):
            pass
        progress.done("tune: 2 trials (properties[ash] stays literal)")
    assert [line.plain for line in lines] == ["✔ tune: 2 trials (properties[ash] stays literal)"]
    assert capsys.readouterr().err == ""
    progress.done("printed again once the hold ends")
    assert "printed again once the hold ends" in capsys.readouterr().err


def test_holding_in_one_thread_leaves_the_others_printing(capsys):
    held, release = threading.Event(), threading.Event()
    kept: list = []

    def alongside() -> None:
        with progress.held() as lines:
            held.set()
            release.wait(10)
            progress.done("from the thread alongside")
        kept.extend(lines)

    thread = threading.Thread(target=alongside)
    thread.start()
    held.wait(10)
    with progress.step("the main thread's step"):
        progress.done("from the main thread")
    release.set()
    thread.join(10)
    err = capsys.readouterr().err
    assert "from the main thread" in err and "from the thread alongside" not in err
    assert [line.plain for line in kept] == ["✔ from the thread alongside"]
