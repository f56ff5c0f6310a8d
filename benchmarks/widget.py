"""Widget frame cost: kernel CPU time to build and send one frame of a live view.

``SocketComm`` does a kernel's work without a kernel (signed jupyter Session, zmq
socket); the widget tests read frames back through it too.
"""

from __future__ import annotations

import time

import numpy as np
from comm.base_comm import BaseComm

from eegkit import StreamInfo, StreamView


class SocketComm(BaseComm):
    """Comm that does the kernel's work outside a kernel: signed Session + zmq socket.

    Attach it to a widget (``widget.comm = SocketComm(widget)``) to measure the cost
    of sending frames, or to read sent messages back in tests (:meth:`recv`);
    messages from the browser are handed over with :meth:`deliver`.
    """

    def __init__(self, widget):
        import zmq
        from jupyter_client.session import Session

        ctx = zmq.Context.instance()
        address = f"inproc://eegkit-view-{widget.model_id}"
        self.session = Session(key=b"eegkit-frame-cost")  # HMAC-SHA256 signing, as a kernel does
        self.push, self.pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
        self.push.bind(address)
        self.pull.connect(address)
        super().__init__(comm_id=widget.model_id, primary=False, target_name="jupyter.widget")

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        """Serialize, sign and send like ``ipykernel.comm.Comm.publish_msg``."""
        from ipykernel.jsonutil import json_clean

        content = json_clean(dict(data={} if data is None else data, comm_id=self.comm_id, **keys))
        self.session.send(self.push, msg_type, content, metadata=json_clean(metadata or {}),
                          ident=self.topic, buffers=buffers)

    def recv(self, method="custom") -> list:
        """Messages sent since the last call, as (content, buffers).

        ``method="custom"`` gives the contents of custom messages (frames);
        ``"update"`` the state of trait updates.
        """
        import zmq

        out = []
        while self.pull.poll(0, zmq.POLLIN):
            parts = self.pull.recv_multipart()
            _, msg_parts = self.session.feed_identities(parts)
            msg = self.session.deserialize(msg_parts)
            data = msg["content"].get("data", {})
            if data.get("method") == method:
                out.append((data.get("content", data.get("state")), msg["buffers"]))
        return out

    def deliver(self, content: dict) -> None:
        """Hand a custom message from the browser to the widget (as the kernel would)."""
        self.handle_msg({"content": {"comm_id": self.comm_id,
                                     "data": {"method": "custom", "content": content}},
                         "buffers": []})

    def shutdown(self) -> None:
        """Close the sockets."""
        self.push.close(linger=0)
        self.pull.close(linger=0)


def frame_cost(n_channels=64, sfreq=1000.0, seconds=5.0, n_frames=200, view="scope", fps=30.0) -> dict:
    """Kernel CPU time to build and send one frame of a live view.

    Feeds ``1/fps`` s of random data between frames and times (``time.thread_time``)
    the build and the send of each frame through a signed jupyter Session and a
    zmq socket, acknowledging every frame as a browser would.

    Returns
    -------
    dict
        ``median_ms``, ``p99_ms``, ``max_ms``, ``n_frames``, ``bytes_per_frame``.
    """
    rng = np.random.default_rng(0)
    info = StreamInfo(sfreq, [f"ch{i}" for i in range(n_channels)])
    if view in ("spectrum", "bars"):
        axis = np.arange(0.0, 129.0) if view == "spectrum" else np.arange(5.0)
        info = info.expand(view if view == "spectrum" else "features", [str(a) for a in axis], axis,
                           sfreq / 32)
    v = StreamView(info, view=view, fps=fps, seconds=seconds)
    comm = v.comm = SocketComm(v)
    chunk = max(1, int(round(sfreq / fps)))
    block = rng.standard_normal((info.n_channels, max(chunk, int(sfreq * seconds))))
    try:
        v._buf.write(block, 0)  # a full window before timing starts
        first = block.shape[1]
        costs, nbytes = [], 0
        for _ in range(n_frames):
            v._buf.write(block[:, :chunk], first)
            first += chunk
            t0 = time.thread_time()
            sent = v._tick()
            costs.append(time.thread_time() - t0)
            for content, buffers in comm.recv():
                nbytes = len(buffers[0])
                comm.deliver({"type": "ack", "seq": content["seq"]})
            assert sent, "frame_cost: a frame was not sent"
    finally:
        v.close()
        comm.shutdown()
    ms = np.asarray(costs) * 1e3
    return {"median_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()), "n_frames": n_frames, "bytes_per_frame": nbytes}
