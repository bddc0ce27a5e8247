"""ENOSPC and EIO at each kind of write: one line, no traceback, no partial file under a final name, finished
clips kept, and the next run finishes the rest."""
import errno
import os
from pathlib import Path

import pytest
from drill_kit import TARGET, patch_atomic, render_argv, run_child, settle, target_key

ERRORS = {"ENOSPC": (errno.ENOSPC, "No space left on device"), "EIO": (errno.EIO, "Input/output error")}


def failing(code):
    number, text = ERRORS[code]
    return lambda where: OSError(number, text, where)


def fail_in_writer(match):
    """The writer's temp file is (partly) written, then the next write fails."""
    def install(error):
        def install_in_child(fire, renderer):
            def after_body(dest, tmp):
                fire(f"write {dest.name}", kill=False)
                raise error(str(tmp))

            patch_atomic(match, after_body)
        return install_in_child
    return install


def fail_rename(name):
    def install(error):
        def install_in_child(fire, renderer):
            real = os.replace

            def replace(src, dst, *a, **kw):
                if Path(dst).name == name:
                    fire(f"rename {name}", kill=False)
                    raise error(str(dst))
                return real(src, dst, *a, **kw)

            os.replace = replace
        return install_in_child
    return install


def fail_manifest(error):
    def install_in_child(fire, renderer):
        from animate.outputs.layout import Manifest

        real = Manifest.append

        def append(self, entry):
            if entry.get("key") == TARGET:
                fire("manifest append", kill=False)
                raise error(str(self.path))
            return real(self, entry)

        Manifest.append = append
    return install_in_child


def in_root(name):
    return lambda dest: dest.name == name and dest.parent.name == "drill"


POINTS = {
    "gif-write": lambda key: fail_in_writer(in_root(f"{TARGET}.gif")),
    "png-write": lambda key: fail_in_writer(in_root(TARGET)),
    "mp4-rename": lambda key: fail_rename(f"{TARGET}.mp4"),
    "framestore": lambda key: fail_in_writer(lambda d: d.parent.name == ".frames" and d.name.startswith(key)),
    "preview": lambda key: fail_in_writer(lambda d: d.parent.name == ".previews" and d.stem == TARGET),
    "sidecar": lambda key: fail_in_writer(in_root(f"{TARGET}.json")),
    "manifest": lambda key: fail_manifest,
    "gallery": lambda key: fail_in_writer(in_root("index.html")),
}
WORDS = {"ENOSPC": "the disk is full", "EIO": "input/output error"}


@pytest.mark.parametrize("code", list(ERRORS))
@pytest.mark.parametrize("point", list(POINTS))
def test_write_faults(point, code, warm, drill_script, tmp_path):
    out = tmp_path / "out"
    install = POINTS[point](target_key(warm, drill_script))(failing(code))
    result = run_child(warm, render_argv(drill_script, out), install, tmp_path / "child")
    assert result.fired, f"{point}: the fault never fired: {result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.error_lines()
    assert result.status == 1 and len(lines) == 1, (result.status, result.stderr[-2000:])
    assert WORDS[code] in lines[0] and "finished clips are kept" in lines[0], lines[0]
    settle(f"{point}-{code}", warm, drill_script, out, result, faults=len(result.fired))
