"""Frame buffers of live views: what a view keeps of a stream, and the frames it sends.

Both are fed under the view's lock from the pipeline thread (``write``) and read
by the pacer thread (``build``); ``build`` returns a fresh array each time because
the kernel sends buffers asynchronously.
"""

from __future__ import annotations

import numpy as np


class WindowBuffer:
    """Last ``seconds`` of a timeseries, with min/max per bucket of ``step`` samples.

    Ring slot of absolute sample ``s`` is ``s % cap``; ``cap`` is a multiple of
    ``step``, so a bucket never straddles the wrap and bucket ``k`` lives in ring
    columns ``(k % n_buckets) * step ...``. A bucket is reduced once, by the first
    frame built after it is complete.
    """

    def __init__(self, n_rows, sfreq, seconds, max_points):
        n = max(2, int(round(seconds * sfreq)))
        self.n_rows, self.sfreq = n_rows, float(sfreq)
        self.step = 1 if n <= max_points else -(-n // (max_points // 2))
        self.n_buckets = -(-n // self.step)
        self.cap = self.n_buckets * self.step
        self.ring = np.zeros((n_rows, self.cap), np.float32)
        # (rows, buckets, [min, max]); only used when step > 1
        self.minmax = np.zeros((n_rows, self.n_buckets if self.step > 1 else 0, 2), np.float32)
        self.start = self.end = None  # valid absolute samples: [max(start, end - cap), end)
        self.done = self.kept = 0     # buckets [kept, done) hold their min/max in `minmax`
        self.sent_end = None          # self.end when the last frame was built
        self.sent_t0 = None           # its window's first sample (a delta must continue it)

    def write(self, block, first):
        """Copy a block into the ring (caller holds the lock)."""
        n = block.shape[1]
        if first != self.end:  # first block, or a gap/restart: start a new window
            self.start = self.end = first
            self.done = self.kept = -(-first // self.step)
            self.sent_end = self.sent_t0 = None
        if n > self.cap:
            block, first, n = block[:, n - self.cap:], first + n - self.cap, self.cap
        i = first % self.cap
        k = min(n, self.cap - i)
        self.ring[:, i:i + k] = block[:, :k]
        self.ring[:, :n - k] = block[:, k:]
        self.end = first + n

    def has_news(self):
        """True when samples arrived since the last built frame."""
        return self.end is not None and self.end != self.sent_end

    def build(self, full=True):
        """(content, float32 data) of the current window, or None if nothing new.

        With ``full=False`` only the points that scrolled in since the last built frame
        are sent (``content["delta"]`` of them, the window's tail): the browser keeps the
        window and shifts them in, so a frame is a few kB instead of the whole window.
        """
        if not self.has_news():
            return None
        step, nb = self.step, self.n_buckets
        lo = max(self.start, self.end - self.cap)       # first sample still in the ring
        if step == 1:
            out = np.empty((self.n_rows, self.cap), np.float32)
            s = self.end % self.cap
            out[:, :self.cap - s] = self.ring[:, s:]
            out[:, self.cap - s:] = self.ring[:, :s]
            t0 = self.end - self.cap
            n_invalid = lo - t0
            layout = "raw"
        else:
            k_end = self.end // step                    # complete buckets: [.., k_end)
            k0 = max(self.done, -(-lo // step), k_end - nb)
            if k0 > self.done:   # buckets were overwritten before they were reduced
                self.kept = k0
            self._reduce(k0, k_end)
            self.done = k_end
            self.kept = max(self.kept, k_end - nb)
            out = np.empty((self.n_rows, nb, 2), np.float32)
            s = k_end % nb
            out[:, :nb - s] = self.minmax[:, s:]
            out[:, nb - s:] = self.minmax[:, :s]
            t0 = (k_end - nb) * step
            n_invalid = min(nb, self.kept - (k_end - nb))
            layout = "minmax"
        out[:, :n_invalid] = np.nan
        content = {"layout": layout, "shape": list(out.shape), "first_sample": int(t0),
                   "step": step, "valid_from": int(n_invalid), "end_sample": int(self.end),
                   "sfreq": self.sfreq}
        if not full and self.sent_t0 is not None:
            n_new = (t0 - self.sent_t0) // step
            if n_new == 0:
                return None  # no complete bucket yet: nothing to scroll in
            if 0 < n_new < out.shape[1]:
                content["delta"] = int(n_new)
                out = np.ascontiguousarray(out[:, out.shape[1] - n_new:])
        self.sent_end, self.sent_t0 = self.end, t0
        return content, out

    def _reduce(self, k0, k1):
        """Min/max of absolute buckets [k0, k1) into their slots."""
        nb, step = self.n_buckets, self.step
        buckets = self.ring.reshape(self.n_rows, nb, step)
        while k0 < k1:
            s = k0 % nb
            m = min(k1 - k0, nb - s)
            seg = buckets[:, s:s + m]
            np.min(seg, axis=2, out=self.minmax[:, s:s + m, 0])
            np.max(seg, axis=2, out=self.minmax[:, s:s + m, 1])
            k0 += m


class LatestBuffer:
    """Newest column of a spectrum/features stream, sent as (channels, axis items)."""

    def __init__(self, n_rows, n_axis, max_points):
        self.n_rows, self.n_axis = n_rows, n_axis
        self.n_ch = n_rows // n_axis
        # average adjacent bins when a spectrum has more bins than the view can draw
        self.step = max(1, -(-n_axis // max_points))
        self.col = np.full(n_rows, np.nan, np.float32)
        self.index = self.sent_index = None

    def write(self, block, first):
        """Keep the block's last column (caller holds the lock)."""
        self.col[:] = block[:, -1]
        self.index = first + block.shape[1] - 1

    def has_news(self):
        """True when a column arrived since the last built frame."""
        return self.index is not None and self.index != self.sent_index

    def build(self, full=True):
        """(content, float32 data) of the newest column, or None if nothing new."""
        if not self.has_news():
            return None
        data = self.col.reshape(self.n_ch, self.n_axis)
        if self.step > 1:
            n = self.n_axis // self.step * self.step
            data = data[:, :n].reshape(self.n_ch, -1, self.step).mean(axis=2)
        # a copy: the kernel sends buffers asynchronously, never hand out the live one
        out = np.array(data, dtype=np.float32, order="C")
        self.sent_index = self.index
        content = {"layout": "latest", "shape": list(out.shape), "first_sample": int(self.index),
                   "step": self.step}
        return content, out
