"""Drill fixtures: the tiny kit and a renderer warmed on the drill script (children are forked from it), and the
summary line at the end of the session."""
import pytest
from drill_kit import TALLY, write_script


@pytest.fixture(scope="session")
def warm(renderer, tmp_path_factory):
    """The session renderer after one clean run of the drill script: the stack is loaded and every encoder's
    libraries are imported, so a forked child starts at once."""
    from animate.run import run_specs
    from animate.spec import load_script, resolve

    folder = tmp_path_factory.mktemp("warm")
    script = write_script(folder)
    summary = run_specs(resolve(load_script(script)), out=folder / "out", script_stem=script.stem, renderer=renderer)
    assert summary.exit_code == 0
    import av  # noqa: F401  (the folder checks read MP4s back)
    return renderer


@pytest.fixture
def drill_script(tmp_path):
    return write_script(tmp_path)


def pytest_terminal_summary(terminalreporter):
    if TALLY.drills:
        terminalreporter.write_line(TALLY.line())
        for item in TALLY.lost_detail:
            terminalreporter.write_line(f"  lost: {item}")
