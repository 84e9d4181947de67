"""Writes the README's screenshots: the jobs panel during an ingest of the sample photos, and the
people view once two clusters are named. Run under Xvfb (scripts/screenshots) or with
QT_QPA_PLATFORM=offscreen:

    python3 -m facenames.app.screenshots OUT_DIR [PHOTOS_DIR]

Builds a fresh library in a temporary folder from the sample photos, each twice; clusters are
written straight into it (faces with near descriptors) as long as this build has no clustering
job. Exit status 0 when both
images were written."""
import math
import os
import shutil
import sqlite3
import struct
import sys
import tempfile

from PyQt5.QtCore import QEventLoop, QTimer
from PyQt5.QtWidgets import QApplication

from .context import AppContext
from .window import MainWindow


def _wait(app, cond, timeout_s=120):
    loop = QEventLoop()
    t = QTimer()
    t.timeout.connect(lambda: cond() and loop.quit())
    t.start(20)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec_()
    t.stop()
    return cond()


def _make_clusters(library, threshold=0.5):
    """Groups faces whose descriptors are within `threshold` (euclidean) of a group's first face:
    a stand-in for the clustering job when this build has none, for the picture only."""
    db = sqlite3.connect(os.path.join(library, "library.db"))
    rows = [(fid, struct.unpack("128f", blob)) for fid, blob in
            db.execute("SELECT id, descriptor FROM faces WHERE descriptor IS NOT NULL ORDER BY id")]
    groups = []
    for fid, d in rows:
        for g in groups:
            if math.dist(g[0][1], d) < threshold:
                g.append((fid, d))
                break
        else:
            groups.append([(fid, d)])
    with db:
        for i, g in enumerate(sorted(groups, key=len, reverse=True), 1):
            db.execute("INSERT INTO clusters (id, created_at, size) VALUES (?, 1, ?)", (i, len(g)))
            db.executemany("UPDATE faces SET cluster_id = ? WHERE id = ?", [(i, f) for f, _ in g])
    db.close()


def _photos_twice(src, dst):
    """The sample photos twice, under two names: every face then has a look-alike to group."""
    os.makedirs(dst)
    for f in sorted(os.listdir(src)):
        if f.lower().endswith(".jpg"):
            shutil.copy(os.path.join(src, f), os.path.join(dst, f))
            shutil.copy(os.path.join(src, f), os.path.join(dst, "again-" + f))
    return dst


def main(argv):
    out = os.path.abspath(argv[1] if len(argv) > 1 else ".")
    photos = argv[2] if len(argv) > 2 else os.environ.get("FACENAMES_SAMPLES")
    os.makedirs(out, exist_ok=True)
    app = QApplication(argv[:1])
    tmp = tempfile.mkdtemp(prefix="facenames-shots-")
    ctx = AppContext(os.path.join(tmp, "library"), 2, {"ingest.batch": 1})
    win = MainWindow(ctx)
    win.resize(1200, 800)
    win.show()
    jobs = win.jobs
    jobs.ingest([_photos_twice(photos, os.path.join(tmp, "photos"))])

    def halfway():
        j = jobs.model.jobs[0] if jobs.model.jobs else {}
        c = (j.get("progress") or {}).get("counters", {})
        return j.get("state") == "running" and c.get("files_done", 0) >= 5
    _wait(app, halfway)
    jobs.detail_tabs.setCurrentWidget(jobs.charts_box)
    _wait(app, lambda: False, 0.6)  # a few progress updates and a chart redraw
    jobs_png = os.path.join(out, "jobs-panel.png")
    win.grab().save(jobs_png)
    _wait(app, lambda: jobs.model.jobs[0].get("state") == "completed")

    people_png = os.path.join(out, "people-view.png")
    if ctx.writer is not None:
        _make_clusters(ctx.library_dir)
        clusters = ctx.reader.clusters()
        for cid, name in zip([c.id for c in clusters[:2]], ("Ann", "Bob")):
            ctx.writer.name_cluster(cid, name)
        win.tabs.setCurrentWidget(win.people)
        win.people.refresh()
        _wait(app, lambda: len(win.people.people_model.items) >= 2)
        win.people.select("person", win.people.people_model.items[0]["id"])
        _wait(app, lambda: win.people.faces_model.faces and not win.people.thumbs.pending)
        _wait(app, lambda: False, 0.5)
        win.grab().save(people_png)
    win.close()
    ok = os.path.exists(jobs_png) and (ctx.writer is None or os.path.exists(people_png))
    print("\n".join(p for p in (jobs_png, people_png) if os.path.exists(p)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
