"""Drill fixtures: the tiny kit and a renderer warmed on the drill script (children are forked from it), and the
summary line at the end of the session."""
import pytest
from drill_kit import TALLY, write_script


@pytest.fixture(scope="session")
def warmed(renderer, tmp_path_factory):
    """One clean run of the drill script on the session renderer: every encoder's libraries are imported and
    the stack is built, so a forked child starts at once. Returns the script's first spec."""
    from animate.run.runner import run_specs
    from animate.spec import load_script, resolve

    folder = tmp_path_factory.mktemp("warm")
    script = write_script(folder)
    specs = resolve(load_script(script))
    summary = run_specs(specs, out=folder / "out", script_stem=script.stem, renderer=renderer)
    assert summary.exit_code == 0
    import av  # noqa: F401  (the folder checks read MP4s back)
    return specs[0]


@pytest.fixture
def warm(renderer, warmed):
    """The session renderer holding the drill stack (another test may have loaded a different one since)."""
    renderer.stack_for(warmed)
    return renderer


@pytest.fixture
def drill_script(tmp_path):
    return write_script(tmp_path)


def pytest_terminal_summary(terminalreporter):
    if TALLY.drills:
        terminalreporter.write_line(TALLY.line())
        for item in TALLY.lost_detail:
            terminalreporter.write_line(f"  lost: {item}")


def pytest_sessionfinish(session, exitstatus):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller adds the workers up (tests/conftest.py)
        workeroutput["drill_tally"] = vars(TALLY)
    if TALLY.lost:  # every drill asserts it too; the count is the suite's promise
        session.exitstatus = 1
