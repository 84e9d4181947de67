"""scripts/screenshots writes the README's two pictures, and they are not blank."""
import os
import subprocess

from PyQt5.QtGui import QImage

from conftest import ROOT


def _colours(path):
    img = QImage(path)
    assert not img.isNull(), f"{path} is not an image"
    step = max(1, img.width() // 200)
    return {img.pixel(x, y) for x in range(0, img.width(), step)
            for y in range(0, img.height(), step)}, img


def test_screenshots_are_written_and_not_blank(tmp_path):
    out = tmp_path / "shots"
    env = dict(os.environ)
    r = subprocess.run([os.path.join(ROOT, "scripts/screenshots"), str(out)], env=env,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    for name in ("jobs-panel.png", "people-view.png"):
        colours, img = _colours(str(out / name))
        assert img.width() >= 800 and img.height() >= 600
        # a blank or single-colour grab has a handful of colours; the panel's charts and the face
        # thumbnails have hundreds
        assert len(colours) > 200, f"{name}: only {len(colours)} colours"
