"""The photo view: one photo with its face boxes and the names of their people."""
import os

from PyQt5.QtCore import QRectF, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QFont, QImageReader, QPainter, QPen, QPixmap
from PyQt5.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget


class PhotoCanvas(QWidget):
    """Paints a pixmap scaled to fit, and boxes (in the photo's pixels) with labels over it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.pixmap = None
        self.boxes = []  # (x, y, w, h, label, highlighted)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(200, 150)

    def set_photo(self, pixmap, boxes):
        self.pixmap, self.boxes = pixmap, boxes
        self.update()

    def paintEvent(self, ev):
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#202020"))
        if not self.pixmap or self.pixmap.isNull():
            return
        pw, ph = self.pixmap.width(), self.pixmap.height()
        scale = min(self.width() / pw, self.height() / ph)
        ox, oy = (self.width() - pw * scale) / 2, (self.height() - ph * scale) / 2
        p.setRenderHint(QPainter.SmoothPixmapTransform)
        p.drawPixmap(QRectF(ox, oy, pw * scale, ph * scale), self.pixmap,
                     QRectF(0, 0, pw, ph))
        f = QFont(self.font())
        f.setBold(True)
        p.setFont(f)
        for x, y, w, h, label, hot in self.boxes:
            r = QRectF(ox + x * scale, oy + y * scale, w * scale, h * scale)
            color = QColor("#ffcc00") if hot else QColor("#40c040")
            p.setPen(QPen(color, 3 if hot else 2))
            p.setBrush(Qt.NoBrush)
            p.drawRect(r)
            if label:
                tr = QRectF(r.left(), r.bottom() + 2, max(r.width(), 120), 18)
                p.fillRect(tr, QColor(0, 0, 0, 160))
                p.setPen(color)
                p.drawText(tr, Qt.AlignLeft | Qt.AlignVCenter, " " + label)


class PhotoView(QWidget):
    """The photo tab: show_photo(photo_id, face_id) loads the photo and its faces off the UI
    thread, then paints them. `shown` is emitted once it is on screen."""

    message = pyqtSignal(str)
    shown = pyqtSignal(int)

    def __init__(self, ctx, parent=None):
        super().__init__(parent)
        self.ctx = ctx
        self.caption = QLabel("Double-click a face in the people view to see its photo")
        self.canvas = PhotoCanvas()
        lay = QVBoxLayout(self)
        lay.addWidget(self.caption)
        lay.addWidget(self.canvas, 1)

    def show_photo(self, photo_id, face_id=0):
        if self.ctx.reader is None:
            return
        lib = self.ctx.reader

        def load():
            path = lib.photo_path(photo_id)
            faces = lib.faces(photo_id=photo_id)
            names = {p.id: p.name for p in lib.persons()}
            # decoded here, off the UI thread; QImage (not QPixmap) is safe outside it
            reader = QImageReader(os.fsdecode(path))
            reader.setAutoTransform(True)  # EXIF orientation, as the library's boxes assume
            return path, reader.read(), faces, names

        # One load at a time, the last one asked for shown (a double-click on another face
        # while a photo decodes supersedes it).
        self.ctx.run_latest("photo", load, on_done=lambda r: self._loaded(photo_id, face_id, r),
                            on_error=lambda exc: self.message.emit(str(exc)))

    def _loaded(self, photo_id, face_id, result):
        path, image, faces, names = result
        boxes = []
        for f in faces:
            label = names.get(f.person_id, "") if f.person_id else ""
            if f.state == "ignored":
                label = "ignored"
            boxes.append((f.x, f.y, f.width, f.height, label, f.id == face_id))
        self.caption.setText(f"{os.fsdecode(path)} · {len(faces)} face(s)")
        self.canvas.set_photo(QPixmap.fromImage(image), boxes)
        self.shown.emit(photo_id)
