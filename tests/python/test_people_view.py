"""The people view: clusters biggest first, naming a cluster, moving a face, undo with Ctrl+Z,
merging by drop, ignoring, suggestions with the keyboard, and the photo view of a face.

The library is made by a real ingest of the sample photos (the CLI); clusters and suggestions
are written straight into it with SQLite, as the clustering and predict jobs would."""
import os
import shutil
import sqlite3
import threading

import pytest
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QInputDialog

from conftest import cli, until
from facenames import Library
from facenames._lib import lib

pytestmark = pytest.mark.skipif(not lib().has("fn_library_open"),
                                reason="this libfacenames has no people API yet")


def _state_of(library):
    """Every face's (id, person name, state, cluster) and the audit entries' (action, faces,
    detail), to compare two libraries."""
    db = sqlite3.connect(os.path.join(library, "library.db"))
    faces = db.execute("SELECT f.id, p.name, f.state, f.cluster_id FROM faces f"
                       " LEFT JOIN persons p ON p.id = f.person_id ORDER BY f.id").fetchall()
    audit = db.execute("SELECT action, detail FROM audit_log ORDER BY id").fetchall()
    db.close()
    return faces, audit


def _refreshed(qtbot, view, action=None):
    with qtbot.waitSignal(view.refreshed, timeout=10000):
        if action:
            action()


def _select(qtbot, view, grid, model, kind, gid):
    r = model.row_of(kind, gid)
    assert r is not None, f"{kind} {gid} is not in the grid"
    with qtbot.waitSignal(view.refreshed, timeout=10000):
        if view.current == (kind, gid):  # already shown: selecting it again changes nothing
            view.refresh()
        else:
            grid.setCurrentIndex(model.index(r))
    until(qtbot, lambda: view.current == (kind, gid) and view.faces_model.faces)


def test_name_move_undo_merge_ignore(qtbot, make_ctx, clustered, library, tmp_path):
    from facenames.app.people_view import PeopleView

    ctx = make_ctx(threads=0)
    view = PeopleView(ctx)
    qtbot.addWidget(view)
    view.show()
    until(qtbot, lambda: len(view.clusters_model.items) == 2)
    assert [g["faces"] for g in view.clusters_model.items] == [4, 2]  # biggest first

    # the cluster's faces, with their thumbnails loaded from the library
    _select(qtbot, view, view.clusters_view, view.clusters_model, "cluster", 1)
    assert [f.id for f in view.faces_model.faces] == clustered[:4]
    for r in range(4):
        view.faces_model.data(view.faces_model.index(r), Qt.DecorationRole)
    until(qtbot, lambda: all(f in view.thumbs.cache for f in clustered[:4]))
    assert all(view.thumbs.cache[f] is not view.thumbs.missing for f in clustered[:4])

    # naming from the view changes what the same call on a copy changes, audit included
    copy = str(tmp_path / "copy")
    shutil.copytree(library, copy)
    with qtbot.waitSignal(view.changed, timeout=10000):
        qtbot.keyClicks(view.name_edit, "Ann")
        qtbot.keyClick(view.name_edit, Qt.Key_Return)
    with Library(copy, actor=ctx.actor) as other:
        other.name_cluster(1, "Ann")
    assert _state_of(library) == _state_of(copy)
    ann = ctx.reader.find_person("Ann")
    assert ann.faces == 4 and ann.confirmed == 4
    entry = ctx.reader.audit(limit=1)[0]
    assert entry.faces == 4 and entry.actor == ctx.actor and entry.undone_by == 0

    _refreshed(qtbot, view)
    _select(qtbot, view, view.clusters_view, view.clusters_model, "cluster", 2)
    with qtbot.waitSignal(view.changed, timeout=10000):
        qtbot.keyClicks(view.name_edit, "Bob")
        qtbot.keyClick(view.name_edit, Qt.Key_Return)
    bob = ctx.reader.find_person("Bob")
    assert bob.faces == 2
    until(qtbot, lambda: view.people_model.row_of("person", bob.id) is not None)

    # move Ann's first face to Bob
    _select(qtbot, view, view.people_view, view.people_model, "person", ann.id)
    moved = view.faces_model.faces[0].id
    view.faces_view.setCurrentIndex(view.faces_model.index(0))
    view.person_combo.setCurrentIndex(view.person_combo.findData(bob.id))
    with qtbot.waitSignal(view.changed, timeout=10000):
        qtbot.mouseClick(view.btn_move, Qt.LeftButton)
    (face,) = [f for f in ctx.reader.faces(person_id=bob.id) if f.id == moved]
    assert face.state == "confirmed"
    move_entry = ctx.reader.audit(limit=1)[0]

    # Ctrl+Z takes the move back
    with qtbot.waitSignal(view.changed, timeout=10000):
        qtbot.keyClick(view.faces_view, Qt.Key_Z, Qt.ControlModifier)
    assert moved in [f.id for f in ctx.reader.faces(person_id=ann.id)]
    undo = ctx.reader.audit(limit=1)[0]
    assert undo.undoes == move_entry.id
    assert ctx.reader.audit(since_id=move_entry.id - 1)[-1].undone_by == undo.id

    # drop Bob on Ann: merged
    _refreshed(qtbot, view)
    pm = view.people_model
    data = pm.mimeData([pm.index(pm.row_of("person", bob.id))])
    with qtbot.waitSignal(view.changed, timeout=10000):
        pm.dropMimeData(data, Qt.MoveAction, -1, -1, pm.index(pm.row_of("person", ann.id)))
    assert [p.name for p in ctx.reader.persons()] == ["Ann"]
    assert ctx.reader.find_person("Ann").faces == 6

    # ignore one face
    _refreshed(qtbot, view)
    _select(qtbot, view, view.people_view, view.people_model, "person", ann.id)
    ignored = view.faces_model.faces[1].id
    view.faces_view.setCurrentIndex(view.faces_model.index(1))
    with qtbot.waitSignal(view.changed, timeout=10000):
        qtbot.mouseClick(view.btn_ignore, Qt.LeftButton)
    assert [f.state for f in ctx.reader.faces() if f.id == ignored] == ["ignored"]


def test_suggestions_with_the_keyboard_and_the_photo_view(qtbot, make_ctx, clustered, library):
    from facenames.app.people_view import PeopleView
    from facenames.app.photo_view import PhotoView

    with Library(library) as setup:
        ann, _ = setup.create_person("Ann")
        setup.assign(clustered[:2], ann)
    db = sqlite3.connect(os.path.join(library, "library.db"))
    with db:
        db.executemany("INSERT INTO suggestions (face_id, person_id, confidence, distance, margin,"
                       " created_at) VALUES (?, ?, ?, 0.3, 0.2, 1)",
                       [(clustered[6], ann, 0.9), (clustered[7], ann, 0.8)])
    db.close()
    ctx = make_ctx(threads=0)
    view = PeopleView(ctx)
    qtbot.addWidget(view)
    view.show()
    until(qtbot, lambda: len(view.sugg_model.items) == 2)
    view.tabs.setCurrentIndex(1)
    view.sugg_view.setFocus()
    view.sugg_view.setCurrentIndex(view.sugg_model.index(0))
    with qtbot.waitSignal(view.changed, timeout=10000):
        qtbot.keyClick(view.sugg_view, Qt.Key_A)
    assert clustered[6] in [f.id for f in ctx.reader.faces(person_id=ann)]
    until(qtbot, lambda: len(view.sugg_model.items) == 1)
    with qtbot.waitSignal(view.changed, timeout=10000):
        qtbot.keyClick(view.sugg_view, Qt.Key_R)
    assert ctx.reader.suggestions() == []
    assert clustered[7] not in [f.id for f in ctx.reader.faces(person_id=ann)]
    db = sqlite3.connect(os.path.join(library, "library.db"))
    assert db.execute("SELECT count(*) FROM cannot_links WHERE face_id = ? AND person_id = ?",
                      (clustered[7], ann)).fetchone() == (1,)
    db.close()

    # the photo of Ann's first face, with a box per face and her name on hers
    photo = PhotoView(ctx)
    qtbot.addWidget(photo)
    photo.show()
    (face,) = [f for f in ctx.reader.faces() if f.id == clustered[0]]
    with qtbot.waitSignal(photo.shown, timeout=10000):
        photo.show_photo(face.photo_id, face.id)
    on_photo = ctx.reader.faces(photo_id=face.photo_id)
    assert len(photo.canvas.boxes) == len(on_photo) >= 1
    assert not photo.canvas.pixmap.isNull()
    (hot,) = [b for b in photo.canvas.boxes if b[5]]
    assert hot[4] == "Ann" and hot[:4] == (face.x, face.y, face.width, face.height)

    # two faces of that photo asked for quickly, the first load slow: the second face is the one
    # highlighted in the end (its load runs after the first, whose result is dropped)
    assert len(on_photo) >= 2
    first, second = on_photo[0], on_photo[1]
    real, calls, release = ctx.reader.photo_path, [], threading.Event()

    def photo_path(photo_id):
        calls.append(photo_id)
        if len(calls) == 1:
            release.wait(10)
        return real(photo_id)

    ctx.reader.photo_path = photo_path
    photo.show_photo(face.photo_id, first.id)
    until(qtbot, lambda: len(calls) == 1, timeout=5000)
    photo.show_photo(face.photo_id, second.id)
    qtbot.wait(200)  # time for a second load running beside the first to finish first
    release.set()
    until(qtbot, lambda: ctx.async_.pending == 0, timeout=10000)
    qtbot.wait(50)
    (hot,) = [b for b in photo.canvas.boxes if b[5]]
    assert len(calls) == 2 and hot[:4] == (second.x, second.y, second.width, second.height)


def test_the_view_changes_what_the_cli_changes(qtbot, make_ctx, clustered, library, tmp_path,
                                               monkeypatch):
    """Move, ignore, split, merge by drop and Ctrl+Z from the view, and the same five commands
    of the CLI on a copy of the library: the faces, persons and audit entries (action and detail)
    end up the same."""
    from facenames.app.people_view import PeopleView

    with Library(library) as setup:
        ann, _ = setup.create_person("Ann")
        bob, _ = setup.create_person("Bob")
        setup.assign(clustered[:2], ann)
        setup.assign(clustered[2:4], bob)
    copy = str(tmp_path / "copy")
    shutil.copytree(library, copy)

    ctx = make_ctx(threads=0)
    view = PeopleView(ctx)
    qtbot.addWidget(view)
    view.show()
    until(qtbot, lambda: len(view.people_model.items) == 2)
    _select(qtbot, view, view.people_view, view.people_model, "person", ann)
    assert [f.id for f in view.faces_model.faces] == clustered[:2]
    view.faces_view.setCurrentIndex(view.faces_model.index(0))
    view.person_combo.setCurrentIndex(view.person_combo.findData(bob))
    with qtbot.waitSignal(view.changed, timeout=10000):
        qtbot.mouseClick(view.btn_move, Qt.LeftButton)
    _select(qtbot, view, view.people_view, view.people_model, "person", ann)
    assert [f.id for f in view.faces_model.faces] == clustered[1:2]
    view.faces_view.setCurrentIndex(view.faces_model.index(0))
    with qtbot.waitSignal(view.changed, timeout=10000):
        qtbot.mouseClick(view.btn_ignore, Qt.LeftButton)
    # split Bob's second face off as Cy (the name asked in a dialog, answered here)
    _refreshed(qtbot, view)
    _select(qtbot, view, view.people_view, view.people_model, "person", bob)
    assert [f.id for f in view.faces_model.faces] == [clustered[0]] + clustered[2:4]
    view.faces_view.setCurrentIndex(view.faces_model.index(1))
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Cy", True))
    with qtbot.waitSignal(view.changed, timeout=10000):
        qtbot.mouseClick(view.btn_split, Qt.LeftButton)
    _refreshed(qtbot, view)
    pm = view.people_model
    data = pm.mimeData([pm.index(pm.row_of("person", bob))])
    with qtbot.waitSignal(view.changed, timeout=10000):
        pm.dropMimeData(data, Qt.MoveAction, -1, -1, pm.index(pm.row_of("person", ann)))
    with qtbot.waitSignal(view.changed, timeout=10000):
        qtbot.keyClick(view.faces_view, Qt.Key_Z, Qt.ControlModifier)

    cli(copy, "faces", "move", str(clustered[0]), "--person", "Bob")
    cli(copy, "faces", "ignore", str(clustered[1]))
    cli(copy, "people", "split", "Bob", "--name", "Cy", str(clustered[2]))
    cli(copy, "people", "merge", "Bob", "Ann")
    cli(copy, "undo")
    ours, theirs = _state_of(library), _state_of(copy)
    assert ours == theirs
    assert len(ours[1]) == 4 + 5
    assert {"Cy"} <= {name for _, name, _, _ in ours[0]}
    db = sqlite3.connect(os.path.join(library, "library.db"))
    assert {r[0] for r in db.execute("SELECT actor FROM audit_log WHERE id > 4")} == {ctx.actor}
    db.close()

