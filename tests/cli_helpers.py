"""Shared assertions for command-line tests."""


def assert_one_error_line(result, out, *fragments):
    """Exit 2, exactly one `error: ...` line holding every fragment, no traceback, nothing under `out`."""
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert not out.exists() or not any(out.rglob("*")), list(out.rglob("*"))
