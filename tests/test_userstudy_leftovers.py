"""userstudy.files names its temporaries after their writer (host and pid), as metrics.io.files does,
and the first write into a folder removes what a killed writer left there: at once when the
writer's process is dead on this host, otherwise (another host, the older unnamed form) only once
untouched for 6 hours. A live writer's file is never removed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from userstudy_data.media import tagged_video

from userstudy import files


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_first_write_into_a_folder_removes_dead_writers_leftovers(tmp_path):
    out = tmp_path / "analysis"
    out.mkdir()
    host, dead, alive = files._HOST, _dead_pid(), os.getppid()
    other_host = "0" * 8 if host != "0" * 8 else "1" * 8
    week_ago = time.time() - 7 * 24 * 3600
    planted = {
        f".kruskal.csv.tmp-{host}-{dead}-0123abcd.csv": (None, False),        # killed writer: removed
        f".points.md.tmp-{host}-{alive}-0123abcd.md": (week_ago, True),       # live writer: kept, however old
        f".report.md.tmp-{other_host}-{dead}-0123abcd.md": (None, True),      # another host, fresh: kept
        f".report.md.tmp-{other_host}-{dead}-4567abcd.md": (week_ago, False), # another host, 7 days: removed
        ".dunn.png.tmp-89abcdef.png": (None, True),                           # older form, fresh: kept
        ".dunn.png.tmp-0badf00d.png": (week_ago, False),                      # older form, 7 days: removed
        ".notes.txt.tmp-mine": (week_ago, True),                              # not a name it makes: kept
    }
    for name, (mtime, _) in planted.items():
        (out / name).write_text("half written")
        if mtime is not None:
            os.utime(out / name, (mtime, mtime))

    with files.atomic_path(out / "kruskal.csv") as temporary:
        assert re.fullmatch(rf"\.kruskal\.csv\.tmp-{host}-{os.getpid()}-[0-9a-f]{{8}}\.csv", temporary.name)
        temporary.write_text("H,p\n")
    assert (out / "kruskal.csv").read_text() == "H,p\n"
    kept = sorted(name for name, (_, keep) in planted.items() if keep)
    assert sorted(path.name for path in out.iterdir() if path.name.startswith(".")) == kept

    # Later writes of this process into the folder do not scan it again (a new process would).
    leftover = out / f".friedman.csv.tmp-{host}-{dead}-0123abcd.csv"
    leftover.write_text("half written")
    files.write_text_atomic(out / "friedman.csv", "x\n")
    assert leftover.exists()
    assert files.remove_stale_temporaries(out) == [leftover] and not leftover.exists()


def test_a_study_folder_left_by_a_killed_make_study_is_removed(tmp_path):
    """make-study builds in a hidden folder named like a temporary file (no suffix); a dead writer's
    is removed by the next build beside it, a live writer's and a look-alike of another form are kept."""
    from userstudy.make_study import make_study

    host, dead, alive = files._HOST, _dead_pid(), os.getppid()
    planted = {f".study.tmp-{host}-{dead}-0123abcd": False, f".study.tmp-{host}-{alive}-0123abcd": True,
               ".study.tmp-0123abcd": True}
    for name in planted:
        (tmp_path / name / "videos").mkdir(parents=True)
        (tmp_path / name / "videos" / "a.mp4").write_bytes(b"half copied")
    for method in ("a", "b"):
        (tmp_path / "src" / method).mkdir(parents=True)
        (tmp_path / "src" / method / "t1.mp4").write_bytes(tagged_video(method))
    make_study(tmp_path / "study", {m: tmp_path / "src" / m for m in ("a", "b")}, seed="s")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == sorted(
        name for name, keep in planted.items() if keep)
    assert (tmp_path / "study" / "study.json").is_file()
