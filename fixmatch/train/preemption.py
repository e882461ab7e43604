"""SIGTERM -> stop at the next step, save a checkpoint of that step, exit with a message.

Preemptible VMs send SIGTERM and kill the process a short grace period later. A training block
runs up to `steps_per_run` steps inside one TensorFlow call, and Python runs a signal handler
only when that call returns: too late. So the handler is paired with a wakeup file descriptor
(written by Python's C-level handler at once) and a thread that sets a bool variable, which the
compiled block reads before every step (`steps.make_train_block(stop=)`).

Why not `tf.distribute.experimental.PreemptionCheckpointHandler`: it supports only
MultiWorkerMirroredStrategy and TPUStrategy, while single-machine runs here use the default
strategy or MirroredStrategy; and it decides per Python-level step, while the engine runs a
block of steps in one call. Under MultiWorkerMirrored the block itself makes the workers agree
(a sum of their flags before every step, `steps.make_train_block`), so a signal to any worker
stops all of them after the same step and they save that checkpoint together.
"""

import os
import signal
import threading

import tensorflow as tf


class StopWatcher:
    """Context manager: while active, SIGTERM (and SIGINT) set `self.flag` instead of killing.

    Outside the main thread (signal handlers cannot be installed there) it watches nothing and
    `flag` stays false.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.flag = tf.Variable(False, trainable=False, name="stop_requested")
        self.signal_name = None
        self._saved = {}
        self._fds = None
        self._old_wakeup = -1
        self._thread = None

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        self._fds = (read_fd, write_fd)
        for sig in self.SIGNALS:
            self._saved[sig] = signal.signal(sig, self._on_signal)
        self._old_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, name="stop-watcher", daemon=True)
        self._thread.start()
        return self

    def _on_signal(self, signum, frame):  # runs late (after the TF call); the thread ran first
        self._set(signum)

    def _set(self, signum):
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name
        self.flag.assign(True)

    def _watch(self):
        while True:
            data = os.read(self._fds[0], 1)
            if not data or data[0] == 0:  # closed, or the wake-up byte of __exit__
                return
            if data[0] in self.SIGNALS:  # Signals are IntEnums: compare with the byte
                self._set(data[0])

    def __exit__(self, *exc):
        if self._fds is None:
            return False
        signal.set_wakeup_fd(self._old_wakeup)
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        os.write(self._fds[1], b"\0")
        self._thread.join(timeout=5)
        for fd in self._fds:
            os.close(fd)
        self._fds = None
        return False
