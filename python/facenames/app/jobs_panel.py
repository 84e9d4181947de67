"""The jobs panel: every job with its state, progress, rate and ETA; the selected job's counters,
histogram charts, errors (with skip and retry), summary and lifecycle log; buttons to add work
and to cancel, resume and retry.

Nothing here calls the engine on the UI thread: reads and writes go through AppContext.run and
come back as callbacks; live changes come from the Bridge's signals.
"""
import time

from PyQt5.QtCore import QAbstractTableModel, QModelIndex, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (QAbstractItemView, QApplication, QFileDialog, QHBoxLayout,
                             QHeaderView, QLabel, QPlainTextEdit, QProgressBar,
                             QPushButton, QSplitter, QStyle, QStyledItemDelegate,
                             QStyleOptionProgressBar, QTableView, QTableWidget, QTableWidgetItem,
                             QTabWidget, QVBoxLayout, QWidget)

from ..engine import FINAL_STATES, item_bytes

try:
    from PyQt5.QtChart import QBarCategoryAxis, QBarSeries, QBarSet, QChart, QChartView, QValueAxis
except ImportError:  # the chart module is optional: counters still show
    QChartView = None


def progress_fraction(progress):
    """(done, total) from a progress object: the first counter pair X_done / X_total, else
    (None, None)."""
    counters = (progress or {}).get("counters", {})
    for name, total in counters.items():
        if name.endswith("_total"):
            done = counters.get(name[: -len("_total")] + "_done")
            if done is not None:
                return done, total
    return None, None


class RateMeter:
    """Items per second over the last few seconds of (time, done) samples, and the ETA."""

    WINDOW_S = 5.0

    def __init__(self):
        self.samples = []

    def add(self, done, now=None):
        now = time.monotonic() if now is None else now
        if self.samples and self.samples[-1][1] == done:
            return
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.WINDOW_S:
            self.samples.pop(0)

    def rate(self):
        if len(self.samples) < 2:
            return None
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else None

    def eta(self, done, total):
        r = self.rate()
        if not r or r <= 0 or total is None or done is None or done >= total:
            return None
        return (total - done) / r


def fmt_duration(s):
    if s is None:
        return ""
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


class JobsModel(QAbstractTableModel):
    """The jobs, newest first: one row per job, fed by list() and the bridge's signals."""

    COLUMNS = ("ID", "Type", "State", "Priority", "Progress", "Rate", "ETA", "Errors", "Created")
    ProgressRole = Qt.UserRole + 1

    def __init__(self, parent=None):
        super().__init__(parent)
        self.jobs = []  # dicts, newest first
        self.rows = {}  # id -> row index
        self.meters = {}
        self.units = {}

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.jobs)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return self.COLUMNS[section]
        return None

    def job(self, job_id):
        r = self.rows.get(job_id)
        return None if r is None else self.jobs[r]

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        j = self.jobs[index.row()]
        col = self.COLUMNS[index.column()]
        done, total = progress_fraction(j.get("progress"))
        if role == self.ProgressRole:
            return (done, total)
        if role == Qt.UserRole:
            return j["id"]
        if role != Qt.DisplayRole:
            return None
        meter = self.meters.get(j["id"])
        if col == "ID":
            return j["id"]
        if col == "Type":
            return j.get("type", "")
        if col == "State":
            return j.get("state", "")
        if col == "Priority":
            return j.get("priority", "")
        if col == "Progress":
            return f"{done} / {total}" if total is not None else ""
        if col == "Rate":
            r = meter.rate() if meter and j.get("state") == "running" else None
            return f"{r:.1f} {self.units.get(j.get('type'), 'items')}/s" if r else ""
        if col == "ETA":
            return fmt_duration(meter.eta(done, total)) if meter and j.get(
                "state") == "running" else ""
        if col == "Errors":
            return j.get("n_errors", len(j.get("errors", [])))
        if col == "Created":
            return (j.get("created_at") or "").replace("T", " ")[:19]
        return None

    def reset(self, jobs):
        self.beginResetModel()
        self.jobs = list(jobs)
        self.rows = {j["id"]: i for i, j in enumerate(self.jobs)}
        self.endResetModel()

    def upsert(self, job):
        """Adds or replaces a job (a dict from list() or inspect())."""
        job = dict(job)
        if "errors" in job and "n_errors" not in job:
            job["n_errors"] = len(job["errors"])
        job.pop("errors", None)
        r = self.rows.get(job["id"])
        if r is None:
            # newest first: ids grow, so find the first row with a smaller id
            pos = next((i for i, j in enumerate(self.jobs) if j["id"] < job["id"]), len(self.jobs))
            self.beginInsertRows(QModelIndex(), pos, pos)
            self.jobs.insert(pos, job)
            self.rows = {j["id"]: i for i, j in enumerate(self.jobs)}
            self.endInsertRows()
        else:
            old = self.jobs[r]
            old.update(job)
            self._changed(r)

    def _changed(self, r):
        self.dataChanged.emit(self.index(r, 0), self.index(r, len(self.COLUMNS) - 1))

    def add_placeholder(self, job_id, state):
        if job_id not in self.rows:
            self.upsert({"id": job_id, "state": state, "type": "", "priority": "", "n_errors": 0})

    def set_state(self, job_id, state):
        r = self.rows.get(job_id)
        if r is not None:
            self.jobs[r]["state"] = state
            self._changed(r)

    def set_progress(self, job_id, progress):
        r = self.rows.get(job_id)
        if r is None:
            return
        self.jobs[r]["progress"] = progress
        done, _ = progress_fraction(progress)
        if done is not None:
            self.meters.setdefault(job_id, RateMeter()).add(done)
        self._changed(r)

    def add_error(self, job_id):
        r = self.rows.get(job_id)
        if r is not None:
            self.jobs[r]["n_errors"] = self.jobs[r].get("n_errors", 0) + 1
            self._changed(r)


class ProgressDelegate(QStyledItemDelegate):
    """Draws the Progress column as a progress bar (no widget per row)."""

    def paint(self, painter, option, index):
        done, total = index.data(JobsModel.ProgressRole) or (None, None)
        if total is None:
            return super().paint(painter, option, index)
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 2, -2, -2)
        bar.minimum, bar.maximum = 0, max(1, total)
        bar.progress = min(done, max(1, total)) if total else 0
        bar.text = f"{done} / {total}"
        bar.textVisible = True
        QApplication.style().drawControl(QStyle.CE_ProgressBar, bar, painter)


class ErrorsModel(QAbstractTableModel):
    """The selected job's item errors (item, code, message, resolution)."""

    COLUMNS = ("Item", "Code", "Message", "Resolution")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.errors = []

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.errors)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid() or role != Qt.DisplayRole:
            return None
        e = self.errors[index.row()]
        return e.get(self.COLUMNS[index.column()].lower(), "")

    def reset(self, errors):
        self.beginResetModel()
        self.errors = list(errors)
        self.endResetModel()

    def append(self, err):
        self.beginInsertRows(QModelIndex(), len(self.errors), len(self.errors))
        self.errors.append(err)
        self.endInsertRows()


class HistogramChart(QWidget):
    """A small bar chart of one histogram ({bounds, counts}); updated in place."""

    def __init__(self, name, parent=None):
        super().__init__(parent)
        self.name = name
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.chart = QChart()
        self.chart.setTitle(name.replace("_", " "))
        self.chart.legend().hide()
        self.chart.setAnimationOptions(QChart.NoAnimation)
        self.view = QChartView(self.chart)
        self.view.setMinimumHeight(150)
        lay.addWidget(self.view)
        self.counts = None

    def update_histogram(self, h):
        """Updates the bars in place (rebuilding a series costs milliseconds on the UI thread);
        the series is built once per shape."""
        counts = list(h.get("counts", []))
        if counts == self.counts:
            return
        bounds = h.get("bounds", [])
        if self.counts is None or len(counts) != len(self.counts):
            self._build(bounds, len(counts))
        self.counts = counts
        for i, c in enumerate(counts):
            self.set.replace(i, c)
        # whole-number ticks: up to 5 one apart, else 4 steps of a whole number
        top = max(counts + [1])
        if top > 5:
            top = -(-top // 4) * 4
        self.axis_y.setRange(0, top)
        self.axis_y.setTickCount(top + 1 if top <= 5 else 5)

    def _build(self, bounds, n):
        labels = [f"≤{b:g}" for b in bounds] + [f">{bounds[-1]:g}" if bounds else "all"]
        self.chart.removeAllSeries()
        for ax in self.chart.axes():
            self.chart.removeAxis(ax)
        self.set = QBarSet(self.name)
        self.set.append([0.0] * n)
        series = QBarSeries()
        series.append(self.set)
        self.chart.addSeries(series)
        ax = QBarCategoryAxis()
        ax.append(labels[:n])
        self.axis_y = QValueAxis()
        self.axis_y.setLabelFormat("%d")
        self.chart.addAxis(ax, Qt.AlignBottom)
        self.chart.addAxis(self.axis_y, Qt.AlignLeft)
        series.attachAxis(ax)
        series.attachAxis(self.axis_y)


class JobsPanel(QWidget):
    """The jobs tab. `ctx` is an AppContext."""

    # Emitted when a call made from the panel failed (the main window shows it).
    message = pyqtSignal(str)

    def __init__(self, ctx, parent=None):
        super().__init__(parent)
        self.ctx = ctx
        self.model = JobsModel(self)
        self.errors_model = ErrorsModel(self)
        self.selected = None
        self.charts = {}
        self._detail_dirty = False
        self._pending_progress = {}

        buttons = QHBoxLayout()
        self.btn_ingest = QPushButton("Add folder…")
        self.btn_cluster = QPushButton("Cluster")
        self.btn_predict = QPushButton("Predict")
        self.btn_cancel = QPushButton("Cancel")
        self.btn_resume = QPushButton("Resume")
        self.btn_retry = QPushButton("Retry")
        for b in (self.btn_ingest, self.btn_cluster, self.btn_predict, self.btn_cancel,
                  self.btn_resume, self.btn_retry):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.btn_ingest.clicked.connect(self.choose_folder)
        self.btn_cluster.clicked.connect(lambda: self.enqueue("clustering", {}))
        self.btn_predict.clicked.connect(lambda: self.enqueue("predict", {}))
        self.btn_cancel.clicked.connect(self.cancel_selected)
        self.btn_resume.clicked.connect(self.resume_selected)
        self.btn_retry.clicked.connect(self.retry_selected)

        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setItemDelegateForColumn(JobsModel.COLUMNS.index("Progress"),
                                            ProgressDelegate(self.table))
        # Sized to their contents when rows come and go, not on every progress update (a header
        # in ResizeToContents mode measures every row each time a cell changes).
        self.table.horizontalHeader().setSectionResizeMode(JobsModel.COLUMNS.index("Progress"),
                                                           QHeaderView.Stretch)
        self.model.rowsInserted.connect(self._fit_columns)
        self.model.modelReset.connect(self._fit_columns)
        self.table.verticalHeader().hide()
        self.table.selectionModel().selectionChanged.connect(self._on_select)

        # the selected job
        self.title = QLabel("No job selected")
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.stats = QLabel("")
        self.counters = QTableWidget(0, 2)
        self.counters.setHorizontalHeaderLabels(["Counter", "Value"])
        self.counters.verticalHeader().hide()
        self.counters.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        self.counters.horizontalHeader().setStretchLastSection(True)
        self.charts_box = QWidget()
        self.charts_layout = QHBoxLayout(self.charts_box)
        self.charts_layout.setContentsMargins(0, 0, 0, 0)
        self.errors_view = QTableView()
        self.errors_view.setModel(self.errors_model)
        self.errors_view.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.errors_view.horizontalHeader().setStretchLastSection(True)
        self.btn_skip_err = QPushButton("Skip selected")
        self.btn_retry_err = QPushButton("Retry selected")
        self.btn_skip_err.clicked.connect(self.skip_selected_errors)
        self.btn_retry_err.clicked.connect(self.retry_selected_errors)
        errs = QWidget()
        el = QVBoxLayout(errs)
        el.setContentsMargins(0, 0, 0, 0)
        el.addWidget(self.errors_view)
        eb = QHBoxLayout()
        eb.addWidget(self.btn_skip_err)
        eb.addWidget(self.btn_retry_err)
        eb.addStretch(1)
        el.addLayout(eb)
        self.summary = QPlainTextEdit()
        self.summary.setReadOnly(True)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        tabs = QTabWidget()
        tabs.addTab(self.counters, "Counters")
        tabs.addTab(self.charts_box, "Charts")
        tabs.addTab(errs, "Errors")
        tabs.addTab(self.summary, "Summary")
        tabs.addTab(self.log, "Log")
        self.detail_tabs = tabs
        tabs.currentChanged.connect(self._mark_dirty)
        detail = QWidget()
        dl = QVBoxLayout(detail)
        dl.addWidget(self.title)
        dl.addWidget(self.bar)
        dl.addWidget(self.stats)
        dl.addWidget(tabs)

        split = QSplitter(Qt.Vertical)
        split.addWidget(self.table)
        split.addWidget(detail)
        lay = QVBoxLayout(self)
        lay.addLayout(buttons)
        lay.addWidget(split)

        b = ctx.bridge
        b.jobAdded.connect(self._on_added)
        b.stateChanged.connect(self._on_state)
        b.progress.connect(self._on_progress)
        b.itemError.connect(self._on_error)
        # Progress, counters and charts are redrawn at most 5 times a second.
        self._timer = QTimer(self)
        self._timer.setInterval(200)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        self._update_buttons()
        self.refresh()

    # ---- data in
    def refresh(self):
        """Reloads every job (off the UI thread)."""
        self.ctx.run_latest("jobs", self.ctx.engine.list, on_done=self._on_list,
                            on_error=self._fail)

    def _on_list(self, jobs):
        for j in jobs:
            if j["type"] not in self.model.units:
                self.model.units[j["type"]] = self.ctx.engine.rate_unit(j["type"])
        selected = self.selected
        self.model.reset(jobs)
        if selected is not None:
            self.select_job(selected)

    def _reload_job(self, job_id):
        self.ctx.run_latest(("job", job_id), self.ctx.engine.inspect, job_id,
                            on_done=self._on_inspected, on_error=self._fail)

    def _on_inspected(self, job):
        t = job.get("type")
        if t and t not in self.model.units:
            self.model.units[t] = self.ctx.engine.rate_unit(t)
        known = bool(self.model.job(job["id"]) and self.model.job(job["id"]).get("type"))
        self.model.upsert(job)
        if not known:
            self._fit_columns()
        if job["id"] == self.selected:
            self.errors_model.reset(job.get("errors", []))
            self._detail_dirty = True
            self._update_buttons()

    def _on_added(self, job_id, state):
        self.model.add_placeholder(job_id, state)
        self._reload_job(job_id)

    def _on_state(self, job_id, state):
        self._flush_progress(job_id)  # the last snapshot before the state, as the engine sent it
        self.model.set_state(job_id, state)
        if state in FINAL_STATES or state == "running":
            self._reload_job(job_id)
        if job_id == self.selected:
            self._update_buttons()
            self._load_texts(job_id)

    def _on_progress(self, job_id, progress):
        # Kept until the next redraw tick: the engine sends up to events.progress_hz snapshots a
        # second per job, and each one applied at once would repaint its row as often.
        self._pending_progress[job_id] = progress

    def _flush_progress(self, only=None):
        for job_id in [only] if only is not None else list(self._pending_progress):
            progress = self._pending_progress.pop(job_id, None)
            if progress is not None:
                self.model.set_progress(job_id, progress)
                if job_id == self.selected:
                    self._detail_dirty = True

    def _on_error(self, job_id, err):
        self.model.add_error(job_id)
        if job_id == self.selected:
            self.errors_model.append(err)

    def _fail(self, exc):
        self.message.emit(str(exc))

    # ---- selection and detail
    def select_job(self, job_id):
        r = self.model.rows.get(job_id)
        if r is not None:
            self.table.selectRow(r)

    def _on_select(self, *_):
        rows = self.table.selectionModel().selectedRows()
        self.selected = self.model.jobs[rows[0].row()]["id"] if rows else None
        self.errors_model.reset([])
        for c in self.charts.values():
            c.setParent(None)
        self.charts = {}
        if self.selected is not None:
            self._reload_job(self.selected)
            self._load_texts(self.selected)
        self._detail_dirty = True
        self._update_buttons()

    def _load_texts(self, job_id):
        def texts():
            return self.ctx.engine.summary(job_id), self.ctx.engine.log(job_id)

        def show(result):
            if job_id == self.selected:
                self.summary.setPlainText(result[0])
                self.log.setPlainText(result[1])

        self.ctx.run_latest(("texts", job_id), texts, on_done=show, on_error=self._fail)

    def _tick(self):
        self._flush_progress()
        self._redraw_detail()

    def _redraw_detail(self):
        if not self._detail_dirty:
            return
        self._detail_dirty = False
        job = self.model.job(self.selected) if self.selected is not None else None
        if not job:
            self.title.setText("No job selected")
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
            self.stats.setText("")
            self.counters.setRowCount(0)
            return
        title = f"{job.get('type', '')} job {job['id']} · {job.get('state', '')} · " \
            f"{job.get('priority', '')}"
        if self.title.text() != title:
            self.title.setText(title)
        progress = job.get("progress") or {}
        done, total = progress_fraction(progress)
        if total:
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))
        else:
            self.bar.setRange(0, 1)
            self.bar.setValue(1 if job.get("state") == "completed" else 0)
        m = self.model.meters.get(job["id"])
        unit = self.model.units.get(job.get("type"), "items")
        rate = m.rate() if m and job.get("state") == "running" else None
        eta = m.eta(done, total) if m and job.get("state") == "running" else None
        parts = []
        if rate:
            parts.append(f"{rate:.1f} {unit}/s")
        if eta is not None:
            parts.append(f"ETA {fmt_duration(eta)}")
        parts.append(f"{job.get('n_errors', 0)} error(s)")
        if self.stats.text() != " · ".join(parts):
            self.stats.setText(" · ".join(parts))
        # Only what is on screen is redrawn, and only the cells whose text changed: a repaint
        # of the whole panel costs the UI thread several milliseconds.
        counters = progress.get("counters", {})
        if self.detail_tabs.currentWidget() is self.counters:
            if self.counters.rowCount() != len(counters):
                self.counters.setRowCount(len(counters))
            for i, (k, v) in enumerate(counters.items()):
                for col, text in ((0, k), (1, str(v))):
                    item = self.counters.item(i, col)
                    if item is None:
                        self.counters.setItem(i, col, QTableWidgetItem(text))
                    elif item.text() != text:
                        item.setText(text)
        if QChartView is not None and self.detail_tabs.currentWidget() is self.charts_box:
            for name, h in progress.get("histograms", {}).items():
                chart = self.charts.get(name)
                if chart is None:
                    chart = self.charts[name] = HistogramChart(name)
                    self.charts_layout.addWidget(chart)
                chart.update_histogram(h)

    def _fit_columns(self, *_):
        progress = JobsModel.COLUMNS.index("Progress")
        for c in range(len(JobsModel.COLUMNS)):
            if c != progress:
                self.table.resizeColumnToContents(c)
        # room for what the rate and ETA columns will show once the job runs
        for name, width in (("Rate", 110), ("ETA", 60)):
            c = JobsModel.COLUMNS.index(name)
            self.table.setColumnWidth(c, max(width, self.table.columnWidth(c)))

    def _mark_dirty(self, *_):
        self._detail_dirty = True

    def _update_buttons(self):
        job = self.model.job(self.selected) if self.selected is not None else None
        state = job.get("state") if job else None
        self.btn_cancel.setEnabled(state in ("queued", "running"))
        self.btn_resume.setEnabled(state in ("cancelled", "failed"))
        self.btn_retry.setEnabled(state in FINAL_STATES and bool(job.get("n_errors")))
        self.btn_skip_err.setEnabled(job is not None)
        self.btn_retry_err.setEnabled(state in FINAL_STATES)

    # ---- actions
    def choose_folder(self):
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of photos")
        if folder:
            self.ingest([folder])

    def ingest(self, paths, **options):
        payload = {"paths": [str(p) for p in paths]}
        payload.update(options)
        self.enqueue("ingest", payload, follow_same=True)

    def enqueue(self, job_type, payload, priority="interactive", follow_same=False):
        self.ctx.run(self.ctx.engine.enqueue, job_type, payload, priority,
                     follow_same=follow_same, on_done=self._on_enqueued, on_error=self._fail)

    def _on_enqueued(self, job_id):
        self.model.add_placeholder(job_id, "queued")
        self._reload_job(job_id)
        self.select_job(job_id)

    def cancel_selected(self):
        if self.selected is not None:
            self.ctx.run(self.ctx.engine.cancel, self.selected, on_error=self._fail)

    def resume_selected(self):
        if self.selected is not None:
            self.ctx.run(self.ctx.engine.resume, self.selected,
                         on_done=lambda f: self._on_enqueued(f.id), on_error=self._fail)

    def retry_selected(self):
        if self.selected is not None:
            self.ctx.run(self.ctx.engine.retry, self.selected,
                         on_done=lambda f: self._on_enqueued(f.id), on_error=self._fail)

    def _selected_error_items(self):
        rows = sorted({i.row() for i in self.errors_view.selectionModel().selectedRows()})
        return [item_bytes(self.errors_model.errors[r]) for r in rows]

    def skip_selected_errors(self):
        job, items = self.selected, self._selected_error_items()
        if job is None or not items:
            return
        self.ctx.run(self.ctx.engine.resolve_errors, job, "skip", items=items,
                     who=self.ctx.actor, on_done=lambda _: self._reload_job(job),
                     on_error=self._fail)

    def retry_selected_errors(self):
        job, items = self.selected, self._selected_error_items()
        if job is None or not items:
            return

        def mark_and_retry():
            self.ctx.engine.resolve_errors(job, "retry", items=items, who=self.ctx.actor)
            return self.ctx.engine.retry(job, items=items)

        def done(f):
            self._reload_job(job)
            self._on_enqueued(f.id)

        self.ctx.run(mark_and_retry, on_done=done, on_error=self._fail)

