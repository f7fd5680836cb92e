"""Atomic output: write to a temporary file beside the target, then rename, so nothing half-written is left."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            fh.write(data)
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _file_mode(path: Path) -> int:
    """The mode a plain `open(path, "w")` would give: the old file's when it exists, else 0o666 less the
    umask (mkstemp's 0o600 would hide outputs from the rest of a team)."""
    if path.exists():
        return path.stat().st_mode & 0o777
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def figure(ncols: int = 1, figsize=(6.4, 4.4)):
    """A matplotlib figure on the file-only Agg backend (no display needed): (fig, axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=figsize)


def _rendered(fig, fmt: str, buffer):
    """Lay out, render into `buffer`, release the figure; the buffer's contents."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(buffer, format=fmt, dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def save_figure(fig, path: str | Path) -> Path:
    """Lay out, write as PNG atomically, and release the figure."""
    return atomic_write(path, _rendered(fig, "png", io.BytesIO()))


def figure_svg(fig) -> str:
    """Lay out, render as SVG text, and release the figure."""
    return _rendered(fig, "svg", io.StringIO())
