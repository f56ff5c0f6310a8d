"""Source text of view modules, followed on disk during development.

A view (built-in or a plugin's ``ui/bundle.js``) reaches the browser as text in a
trait of :class:`~eegkit.notebook._widget.StreamView`; the view host
(``widgets/protocol.js``) imports it. With ``ANYWIDGET_HMR=1`` (the switch anywidget
uses for its own ``_esm`` files) and ``watchfiles`` installed, an edited file is read
again and every open view showing it gets the new text: that is hot reload of a
view. One watcher thread per file, shared by every view showing it.
"""

from __future__ import annotations

import os
import re
import threading
import weakref
from pathlib import Path

from .._errors import ParameterError

_FILES: dict = {}
_FILES_LOCK = threading.Lock()
# a view module gets its helpers as the `api` argument: a relative import cannot be
# resolved from text, so it is refused up front with a sentence instead of a browser error
_RELATIVE_IMPORT = re.compile(r"""^\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"]\.{1,2}/""", re.MULTILINE)


def hmr_enabled() -> bool:
    """True when view files should be followed on disk (``ANYWIDGET_HMR=1``)."""
    return os.environ.get("ANYWIDGET_HMR", "").lower() in ("1", "true", "yes")


class ViewSource:
    """Text of one view module file; tells subscribers when the file changes."""

    def __init__(self, path: Path):
        self.path = path
        self.text = read_view_module(path)
        self._subscribers = weakref.WeakKeyDictionary()  # owner -> name of its trait
        self._thread = None

    def subscribe(self, owner, trait: str) -> None:
        """Set ``owner.<trait>`` to the new text on each change, while ``owner`` is alive."""
        self._subscribers[owner] = trait
        if self._thread is None and hmr_enabled():
            try:
                import watchfiles  # noqa: F401
            except ImportError:
                return
            self._thread = threading.Thread(target=self._watch, name=f"eegkit-view-src-{self.path.name}",
                                            daemon=True)
            self._thread.start()

    def unsubscribe(self, owner) -> None:
        """Stop telling ``owner``."""
        self._subscribers.pop(owner, None)

    def _watch(self):
        """Watcher thread: re-read the file on each change (daemon, like anywidget's)."""
        import watchfiles

        for changes in watchfiles.watch(self.path.parent, debounce=50, raise_interrupt=False):
            if not any(Path(p).name == self.path.name for _, p in changes) or not self.path.is_file():
                continue
            try:
                text = self.path.read_text(encoding="utf-8")
            except OSError:
                continue
            if text == self.text:
                continue
            self.text = text  # a bad edit is shown by the view host; the last good view keeps running
            for owner, trait in list(self._subscribers.items()):
                setattr(owner, trait, text)


def view_source(path: Path) -> ViewSource:
    """The shared :class:`ViewSource` of a view module file."""
    path = Path(path).resolve()
    if not hmr_enabled():
        return ViewSource(path)  # read now: a new view shows the file as it is
    with _FILES_LOCK:
        if path not in _FILES or _FILES[path]._thread is None:  # not followed: read it again
            _FILES[path] = ViewSource(path)
        return _FILES[path]


def read_view_module(path: Path) -> str:
    """Text of a view module, refused when it imports a file beside it."""
    text = Path(path).read_text(encoding="utf-8")
    match = _RELATIVE_IMPORT.search(text)
    if match:
        raise ParameterError(f"StreamView: view module {str(path)!r} imports a relative file "
                             f"({match.group(0).strip()!r}...); a view module is loaded from text and "
                             f"cannot import files beside it: use the helpers it receives as `api` "
                             f"(widgets/draw.js) or put the code in the module itself")
    return text
