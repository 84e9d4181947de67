"""The people view: people and clusters as grids of face thumbnails (biggest first), the selected
one's faces, and the naming actions: name a cluster, move, ignore or split off faces, merge people
by drag and drop, review suggestions with the keyboard, undo with Ctrl+Z.

Everything is a Qt item model with lazily loaded thumbnails (only the visible items ask for
theirs), so a cluster of thousands of faces is a list of ints until it is scrolled. Every read
and write runs through AppContext.run; the UI thread only builds models from the results.
"""
import json
from collections import OrderedDict

from PyQt5.QtCore import (QAbstractListModel, QByteArray, QMimeData, QModelIndex, QObject, QSize,
                          Qt, pyqtSignal)
from PyQt5.QtGui import QColor, QKeySequence, QPixmap
from PyQt5.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QInputDialog, QLabel,
                             QLineEdit, QListView, QPushButton, QShortcut, QSplitter, QTabWidget,
                             QVBoxLayout, QWidget)

PERSON_MIME = "application/x-facenames-person"
FACES_MIME = "application/x-facenames-faces"
THUMB = 96


class Thumbnails(QObject):
    """Face thumbnails by face id: loaded on the pool when first asked for, kept in an LRU cache;
    `loaded(face_id)` says when one arrived so the models repaint that item."""

    loaded = pyqtSignal(int)
    CAPACITY = 4000

    def __init__(self, ctx, parent=None):
        super().__init__(parent)
        self.ctx = ctx
        self.cache = OrderedDict()
        self.pending = set()
        self.placeholder = QPixmap(THUMB, THUMB)
        self.placeholder.fill(QColor("#d0d0d0"))
        self.missing = QPixmap(THUMB, THUMB)
        self.missing.fill(QColor("#a05050"))

    def get(self, face_id):
        if not face_id:
            return self.placeholder
        pm = self.cache.get(face_id)
        if pm is not None:
            self.cache.move_to_end(face_id)
            return pm
        if face_id not in self.pending and self.ctx.thumbs is not None:
            self.pending.add(face_id)
            self.ctx.run(self.ctx.thumbs.thumbnail, face_id,
                         on_done=lambda data, f=face_id: self._arrived(f, data),
                         on_error=lambda exc, f=face_id: self._arrived(f, None))
        return self.placeholder

    def _arrived(self, face_id, data):
        self.pending.discard(face_id)
        pm = QPixmap()
        if not data or not pm.loadFromData(QByteArray(data), "JPG"):
            pm = self.missing
        else:
            pm = pm.scaled(THUMB, THUMB, Qt.KeepAspectRatio, Qt.SmoothTransformation)
        self.cache[face_id] = pm
        while len(self.cache) > self.CAPACITY:
            self.cache.popitem(last=False)
        self.loaded.emit(face_id)


class GroupsModel(QAbstractListModel):
    """People or clusters (dicts: kind, id, name, faces, cover), biggest first. People can be
    dragged onto people (merge); faces can be dropped on a person (move)."""

    mergeRequested = pyqtSignal(int, int)  # from person, into person
    moveRequested = pyqtSignal(list, int)  # face ids, person

    def __init__(self, thumbs, parent=None):
        super().__init__(parent)
        self.thumbs = thumbs
        self.all = []
        self.items = []  # the rows the view has (a prefix of self.all)
        thumbs.loaded.connect(self._on_thumb)

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.items)

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        g = self.items[index.row()]
        if role == Qt.DisplayRole:
            return f"{g['name']} ({g['faces']})"
        if role == Qt.DecorationRole:
            return self.thumbs.get(g["cover"])
        if role == Qt.UserRole:
            return g
        if role == Qt.ToolTipRole:
            return f"{g['kind']} {g['id']}: {g['faces']} face(s)"
        return None

    def flags(self, index):
        f = super().flags(index)
        if index.isValid() and self.items[index.row()]["kind"] == "person":
            f |= Qt.ItemIsDragEnabled | Qt.ItemIsDropEnabled
        return f

    def supportedDropActions(self):
        return Qt.MoveAction

    def mimeTypes(self):
        return [PERSON_MIME, FACES_MIME]

    def mimeData(self, indexes):
        md = QMimeData()
        ids = [self.items[i.row()]["id"] for i in indexes if i.isValid()]
        md.setData(PERSON_MIME, QByteArray(json.dumps(ids[:1]).encode()))
        return md

    def canDropMimeData(self, data, action, row, column, parent):
        return parent.isValid() and self.items[parent.row()]["kind"] == "person" and (
            data.hasFormat(PERSON_MIME) or data.hasFormat(FACES_MIME))

    def dropMimeData(self, data, action, row, column, parent):
        if not self.canDropMimeData(data, action, row, column, parent):
            return False
        target = self.items[parent.row()]["id"]
        if data.hasFormat(PERSON_MIME):
            (source,) = json.loads(bytes(data.data(PERSON_MIME)).decode())
            if source != target:
                self.mergeRequested.emit(source, target)
        else:
            self.moveRequested.emit(json.loads(bytes(data.data(FACES_MIME)).decode()), target)
        return False  # the view must not remove the dragged row: a refresh redraws the grid

    PAGE = 400  # rows the view gets at a time (see FacesModel)

    def reset(self, items):
        self.beginResetModel()
        self.all = sorted(items, key=lambda g: (-g["faces"], g["id"]))
        self.items = self.all[:self.PAGE]
        self.endResetModel()

    def canFetchMore(self, parent):
        return not parent.isValid() and len(self.items) < len(self.all)

    def fetchMore(self, parent):
        first = len(self.items)
        more = [] if parent.isValid() else self.all[first:first + self.PAGE]
        if more:
            self.beginInsertRows(QModelIndex(), first, first + len(more) - 1)
            self.items.extend(more)
            self.endInsertRows()

    def row_of(self, kind, gid):
        """The row of a person or cluster, fetching pages up to it when it is further down."""
        for i, g in enumerate(self.all):
            if g["kind"] == kind and g["id"] == gid:
                while i >= len(self.items):
                    self.fetchMore(QModelIndex())
                return i
        return None

    def _on_thumb(self, face_id):
        for i, g in enumerate(self.items):
            if g["cover"] == face_id:
                ix = self.index(i)
                self.dataChanged.emit(ix, ix, [Qt.DecorationRole])


class FacesModel(QAbstractListModel):
    """The faces of the selected person or cluster (people.Face), thumbnails on demand. The view
    sees them a page at a time (canFetchMore/fetchMore as it scrolls): a Python model pays a
    Python call per row each time the view lays out its rows, so a cluster of 20k faces shows
    its first page at once and grows while it is scrolled."""

    PAGE = 400

    def __init__(self, thumbs, parent=None):
        super().__init__(parent)
        self.thumbs = thumbs
        self.all = []
        self.faces = []  # the rows the view has (a prefix of self.all)
        self.rows = {}
        self.person_names = {}
        thumbs.loaded.connect(self._on_thumb)

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.faces)

    def canFetchMore(self, parent):
        return not parent.isValid() and len(self.faces) < len(self.all)

    def fetchMore(self, parent):
        if parent.isValid():
            return
        first = len(self.faces)
        more = self.all[first:first + self.PAGE]
        if not more:
            return
        self.beginInsertRows(QModelIndex(), first, first + len(more) - 1)
        self.faces.extend(more)
        for i, f in enumerate(more, first):
            self.rows[f.id] = i
        self.endInsertRows()

    @property
    def total(self):
        return len(self.all)

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        f = self.faces[index.row()]
        if role == Qt.DecorationRole:
            return self.thumbs.get(f.id)
        if role == Qt.DisplayRole:
            mark = {"confirmed": "✓", "ignored": "✗"}.get(f.state, "")
            if f.suggestion_person:
                name = self.person_names.get(f.suggestion_person, f.suggestion_person)
                return f"{mark}{f.id} → {name}?"
            return f"{mark}{f.id}"
        if role == Qt.ToolTipRole:
            return (f"face {f.id} in photo {f.photo_id}, {f.state}, score {f.score:.2f}"
                    f"{', drawn by a person' if f.user_drawn else ''}")
        if role == Qt.UserRole:
            return f
        return None

    def flags(self, index):
        return super().flags(index) | Qt.ItemIsDragEnabled

    def mimeTypes(self):
        return [FACES_MIME]

    def mimeData(self, indexes):
        md = QMimeData()
        ids = [self.faces[i.row()].id for i in indexes if i.isValid()]
        md.setData(FACES_MIME, QByteArray(json.dumps(ids).encode()))
        return md

    def reset(self, faces):
        self.beginResetModel()
        self.all = faces if isinstance(faces, list) else list(faces)
        self.faces = self.all[:self.PAGE]
        self.rows = {f.id: i for i, f in enumerate(self.faces)}
        self.endResetModel()

    def _on_thumb(self, face_id):
        r = self.rows.get(face_id)
        if r is not None:
            ix = self.index(r)
            self.dataChanged.emit(ix, ix, [Qt.DecorationRole])


class SuggestionsModel(QAbstractListModel):
    """Pending suggestions, most confident first."""

    def __init__(self, thumbs, parent=None):
        super().__init__(parent)
        self.thumbs = thumbs
        self.items = []
        self.person_names = {}
        self.rows = {}
        thumbs.loaded.connect(self._on_thumb)

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.items)

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        s = self.items[index.row()]
        if role == Qt.DecorationRole:
            return self.thumbs.get(s.face_id)
        if role == Qt.DisplayRole:
            return f"{self.person_names.get(s.person_id, s.person_id)}? {s.confidence:.0%}"
        if role == Qt.UserRole:
            return s
        return None

    def reset(self, items):
        self.beginResetModel()
        self.items = list(items)
        self.rows = {s.face_id: i for i, s in enumerate(self.items)}
        self.endResetModel()

    def _on_thumb(self, face_id):
        r = self.rows.get(face_id)
        if r is not None:
            ix = self.index(r)
            self.dataChanged.emit(ix, ix, [Qt.DecorationRole])


class _GridView(QListView):
    """A grid of thumbnails with their captions underneath. List mode flowing left to right with
    wrapping, not icon mode: icon mode lays out every item (asking each one its size) when the
    model is reset, 0.7 s for a cluster of 20k faces; list mode with uniform item sizes and
    batched layout asks one item and lays out in steps between events."""

    def viewOptions(self):
        opt = super().viewOptions()
        opt.decorationPosition = opt.Top
        opt.displayAlignment = Qt.AlignHCenter | Qt.AlignTop
        return opt


def _grid(model, drag=False, drop=False):
    v = _GridView()
    v.setModel(model)
    v.setViewMode(QListView.ListMode)
    v.setFlow(QListView.LeftToRight)
    v.setWrapping(True)
    v.setIconSize(QSize(THUMB, THUMB))
    v.setGridSize(QSize(THUMB + 28, THUMB + 34))
    v.setResizeMode(QListView.Adjust)
    v.setUniformItemSizes(True)  # layout never asks every item for its size
    v.setLayoutMode(QListView.Batched)
    v.setBatchSize(2000)
    v.setMovement(QListView.Static)
    v.setWordWrap(True)
    v.setSelectionMode(QAbstractItemView.ExtendedSelection)
    if drag or drop:
        v.setDragEnabled(drag)
        v.setAcceptDrops(drop)
        v.setDropIndicatorShown(drop)
        v.setDragDropMode(QAbstractItemView.DragDrop if drop else QAbstractItemView.DragOnly)
        v.setDefaultDropAction(Qt.MoveAction)
    return v


class PeopleView(QWidget):
    """The people tab. Signals: message(text) for the status bar; openPhoto(photo_id, face_id);
    changed() after every write that succeeded (for tests and other views)."""

    message = pyqtSignal(str)
    openPhoto = pyqtSignal(int, int)
    changed = pyqtSignal()
    refreshed = pyqtSignal()

    def __init__(self, ctx, parent=None):
        super().__init__(parent)
        self.ctx = ctx
        self.thumbs = Thumbnails(ctx, self)
        self.people_model = GroupsModel(self.thumbs, self)
        self.clusters_model = GroupsModel(self.thumbs, self)
        self.faces_model = FacesModel(self.thumbs, self)
        self.sugg_model = SuggestionsModel(self.thumbs, self)
        self.current = None  # ("person"|"cluster", id)
        self.persons = []
        self._sugg_row = None

        self.people_view = _grid(self.people_model, drag=True, drop=True)
        self.clusters_view = _grid(self.clusters_model)
        self.faces_view = _grid(self.faces_model, drag=True)
        self.sugg_view = _grid(self.sugg_model)
        self.sugg_view.setSelectionMode(QAbstractItemView.SingleSelection)
        self.people_view.selectionModel().currentChanged.connect(
            lambda cur, _: self._select_group(self.people_model, cur))
        self.clusters_view.selectionModel().currentChanged.connect(
            lambda cur, _: self._select_group(self.clusters_model, cur))
        self.faces_view.doubleClicked.connect(self._open_photo)
        self.people_model.mergeRequested.connect(self.merge)
        self.people_model.moveRequested.connect(self.move_faces)

        # actions on the selection
        self.title = QLabel("Select a person or a cluster")
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("Type a name and press Enter to name this cluster")
        self.name_edit.returnPressed.connect(self._name_current)
        self.person_combo = QComboBox()
        self.btn_move = QPushButton("Move to")
        self.btn_move.clicked.connect(self._move_selected)
        self.btn_ignore = QPushButton("Ignore")
        self.btn_ignore.clicked.connect(lambda: self.ignore(self.selected_face_ids()))
        self.btn_split = QPushButton("Split off…")
        self.btn_split.clicked.connect(self._split_selected)
        self.btn_undo = QPushButton("Undo")
        self.btn_undo.clicked.connect(self.undo)
        bar = QHBoxLayout()
        for w in (self.btn_move, self.person_combo, self.btn_ignore, self.btn_split,
                  self.btn_undo):
            bar.addWidget(w)
        bar.addStretch(1)

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.addWidget(self.title)
        rl.addWidget(self.name_edit)
        rl.addLayout(bar)
        rl.addWidget(self.faces_view)

        left = QSplitter(Qt.Vertical)
        for label, view in (("People (drag one onto another to merge)", self.people_view),
                            ("Clusters", self.clusters_view)):
            w = QWidget()
            wl = QVBoxLayout(w)
            wl.setContentsMargins(0, 0, 0, 0)
            wl.addWidget(QLabel(label))
            wl.addWidget(view)
            left.addWidget(w)
        browse = QSplitter(Qt.Horizontal)
        browse.addWidget(left)
        browse.addWidget(right)
        browse.setStretchFactor(1, 2)

        sugg = QWidget()
        sl = QVBoxLayout(sugg)
        sl.addWidget(QLabel("A or Enter: accept · R or Delete: reject · "
                            "the next one is then selected"))
        sl.addWidget(self.sugg_view)
        self.sugg_view.installEventFilter(self)

        self.tabs = QTabWidget()
        self.tabs.addTab(browse, "Browse")
        self.tabs.addTab(sugg, "Suggestions")
        lay = QVBoxLayout(self)
        if ctx.people_error:
            lay.addWidget(QLabel(f"Naming is not available: {ctx.people_error}"))
        lay.addWidget(self.tabs)

        self.undo_shortcut = QShortcut(QKeySequence.Undo, self)
        self.undo_shortcut.setContext(Qt.WidgetWithChildrenShortcut)
        self.undo_shortcut.activated.connect(self.undo)
        ctx.bridge.audit.connect(lambda *_: self.refresh())
        ctx.bridge.stateChanged.connect(self._on_job_state)
        self.refresh()

    # ---- loading
    @property
    def available(self):
        return self.ctx.reader is not None

    def refresh(self):
        """Reloads people, clusters, suggestions and the selected group's faces (off the UI
        thread); `refreshed` is emitted when the models hold the result."""
        if not self.available:
            return
        lib = self.ctx.reader

        def load():
            persons = lib.persons()
            clusters = lib.clusters()
            suggestions = lib.suggestions()
            faces = None
            if self.current:
                kind, gid = self.current
                faces = (lib.faces(person_id=gid) if kind == "person" else
                         lib.faces(cluster_id=gid, person_id=-1))
            return persons, clusters, suggestions, faces, self.current

        self.ctx.run_latest("people", load, on_done=self._loaded, on_error=self._fail)

    def _loaded(self, result):
        persons, clusters, suggestions, faces, current = result
        self.persons = persons
        names = {p.id: p.name for p in persons}
        self.faces_model.person_names = self.sugg_model.person_names = names
        self.people_model.reset([{"kind": "person", "id": p.id, "name": p.name, "faces": p.faces,
                                  "cover": p.cover_face} for p in persons])
        self.clusters_model.reset([{"kind": "cluster", "id": c.id, "faces": c.faces,
                                    "cover": c.cover_face,
                                    "name": names.get(c.person_id, f"Cluster {c.id}")}
                                   for c in clusters])
        self.sugg_model.reset(suggestions)
        if self._sugg_row is not None and self.sugg_model.items:
            self.sugg_view.setCurrentIndex(
                self.sugg_model.index(min(self._sugg_row, len(self.sugg_model.items) - 1)))
        self.person_combo.clear()
        for p in persons:
            self.person_combo.addItem(p.name, p.id)
        if current == self.current and faces is not None:
            self.faces_model.reset(faces)
            self._restore_selection()
        self.refreshed.emit()

    def _restore_selection(self):
        if not self.current:
            return
        kind, gid = self.current
        model, view = ((self.people_model, self.people_view) if kind == "person" else
                       (self.clusters_model, self.clusters_view))
        r = model.row_of(kind, gid)
        if r is not None:
            view.selectionModel().blockSignals(True)
            view.setCurrentIndex(model.index(r))
            view.selectionModel().blockSignals(False)
        kind_name = "cluster" if kind == "cluster" else "person"
        g = model.items[r] if r is not None else None
        self.title.setText(f"{g['name']}: {g['faces']} face(s)" if g else
                           f"This {kind_name} holds no face any more")
        self.name_edit.setEnabled(kind == "cluster")

    def _select_group(self, model, index):
        if not index.isValid():
            return
        g = model.items[index.row()]
        self.select(g["kind"], g["id"])

    def select(self, kind, gid):
        """Shows the faces of person or cluster `gid`."""
        self.current = (kind, gid)
        self.faces_model.reset([])
        self.refresh()

    def _on_job_state(self, job_id, state):
        if state == "completed":
            self.refresh()

    def _fail(self, exc):
        self.message.emit(str(exc))

    def selected_face_ids(self):
        return [self.faces_model.faces[i.row()].id
                for i in sorted(self.faces_view.selectionModel().selectedIndexes(),
                                key=lambda i: i.row())]

    # ---- writes (each on the pool; refresh and `changed` when done)
    def _write(self, fn, *args):
        def done(result):
            self.changed.emit()
            self.refresh()

        return self.ctx.run(fn, *args, on_done=done, on_error=self._fail)

    def name_cluster(self, cluster_id, name):
        self._write(self.ctx.writer.name_cluster, cluster_id, name)

    def move_faces(self, face_ids, person_id):
        if face_ids:
            self._write(self.ctx.writer.assign, face_ids, person_id)

    def ignore(self, face_ids):
        if face_ids:
            self._write(self.ctx.writer.ignore, face_ids)

    def split(self, person_id, face_ids, new_name):
        if face_ids:
            self._write(self.ctx.writer.split, person_id, face_ids, new_name)

    def merge(self, from_id, into_id):
        self._write(self.ctx.writer.merge, from_id, into_id)

    def accept(self, face_ids):
        self._write(self.ctx.writer.accept, face_ids)

    def reject(self, face_ids):
        self._write(self.ctx.writer.reject, face_ids)

    def undo(self):
        if self.available:
            self._write(self.ctx.writer.undo, 0)

    # ---- UI glue
    def _name_current(self):
        name = self.name_edit.text().strip()
        if name and self.current and self.current[0] == "cluster":
            self.name_cluster(self.current[1], name)
            self.name_edit.clear()

    def _move_selected(self):
        pid = self.person_combo.currentData()
        if pid is not None:
            self.move_faces(self.selected_face_ids(), pid)

    def _split_selected(self):
        if not self.current or self.current[0] != "person":
            self.message.emit("Split works on a person's faces: select a person first")
            return
        name, ok = QInputDialog.getText(self, "Split off", "Name of the new person:")
        if ok and name.strip():
            self.split(self.current[1], self.selected_face_ids(), name.strip())

    def _open_photo(self, index):
        f = self.faces_model.faces[index.row()]
        self.openPhoto.emit(f.photo_id, f.id)

    def keyPressEvent(self, ev):
        # Ctrl+Z when the shortcut map did not take it (no active window, e.g. offscreen)
        if ev.matches(QKeySequence.Undo):
            self.undo()
            return
        super().keyPressEvent(ev)

    def eventFilter(self, obj, ev):
        if obj is self.sugg_view and ev.type() == ev.KeyPress:
            key = ev.key()
            if key in (Qt.Key_A, Qt.Key_Return, Qt.Key_Enter, Qt.Key_R, Qt.Key_Delete):
                idx = self.sugg_view.currentIndex()
                if idx.isValid():
                    s = self.sugg_model.items[idx.row()]
                    if key in (Qt.Key_A, Qt.Key_Return, Qt.Key_Enter):
                        self.accept([s.face_id])
                    else:
                        self.reject([s.face_id])
                    # the decided one leaves the list: the same row then holds the next one
                    self._sugg_row = idx.row()
                return True
        return super().eventFilter(obj, ev)
