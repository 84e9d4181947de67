"""The main window: the jobs panel, the people view and the photo view as tabs."""
from PyQt5.QtWidgets import QAction, QFileDialog, QMainWindow, QTabWidget

from .jobs_panel import JobsPanel
from .people_view import PeopleView
from .photo_view import PhotoView


class MainWindow(QMainWindow):
    def __init__(self, ctx, parent=None):
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle(f"facenames: {ctx.library_dir}")
        self.jobs = JobsPanel(ctx)
        self.people = PeopleView(ctx)
        self.photo = PhotoView(ctx)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.jobs, "Jobs")
        self.tabs.addTab(self.people, "People")
        self.tabs.addTab(self.photo, "Photo")
        self.setCentralWidget(self.tabs)
        for w in (self.jobs, self.people, self.photo):
            w.message.connect(lambda text: self.statusBar().showMessage(text, 10000))
        self.people.openPhoto.connect(self._open_photo)
        ctx.async_.failed.connect(lambda _, exc: self.statusBar().showMessage(str(exc), 10000))

        menu = self.menuBar().addMenu("&Library")
        add = QAction("&Add a folder…", self)
        add.triggered.connect(self.jobs.choose_folder)
        menu.addAction(add)
        quit_ = QAction("&Quit", self)
        quit_.setShortcut("Ctrl+Q")
        quit_.triggered.connect(self.close)
        menu.addAction(quit_)
        self.resize(1100, 760)

    def _open_photo(self, photo_id, face_id):
        self.photo.show_photo(photo_id, face_id)
        self.tabs.setCurrentWidget(self.photo)

    def closeEvent(self, ev):
        self.ctx.close()
        super().closeEvent(ev)


def choose_library(parent=None):
    return QFileDialog.getExistingDirectory(parent, "Open a facenames library")
