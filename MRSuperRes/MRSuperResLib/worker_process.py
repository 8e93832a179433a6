"""Start, watch and cancel the enhancement worker (worker.py) in a separate process.

Plain ``subprocess.Popen`` so that it works, and is tested, outside Slicer. The Slicer widget polls it from a
QTimer (``poll()`` never blocks); scripts can call ``wait()``. The worker is started in its own process group
(session) so that cancelling kills the whole tree: PythonSlicer is a launcher that starts the real Python as a
child, and killing only the launcher would leave the computation running.
"""

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PROGRESS_PATTERN = re.compile(r"^PROGRESS\s+(\d+)\s*/\s*(\d+)\s*$")
MODEL_PATTERN = re.compile(r"^MODEL\s+(\S+)\s*$")
ERROR_PREFIX = "ERROR:"
WORKER_SCRIPT = Path(__file__).resolve().with_name("worker.py")


def parse_progress_line(line):
    """(done, total) from a ``PROGRESS i/N`` line, or None for any other line."""
    match = PROGRESS_PATTERN.match(line.strip())
    if match is None:
        return None
    done, total = int(match.group(1)), int(match.group(2))
    return (done, total) if total > 0 else None


def python_executable():
    """Slicer's own Python launcher (PythonSlicer) inside Slicer, else the running interpreter."""
    import shutil

    return shutil.which("PythonSlicer") or sys.executable


def build_worker_command(input_path, output_path, scale=2, denoise=1.0, device="auto", slice_axis="auto",
                         batch_size=None, model_id=None, python=None, stated_matrix=None, noise_map=False):
    """Command line that runs worker.py on an input volume file and writes the result file (noise_map: estimate
    a map of noise that varies across the image)."""
    command = [
        python or python_executable(), str(WORKER_SCRIPT),
        "--input", str(input_path), "--output", str(output_path),
        "--scale", str(int(scale)), "--denoise", repr(float(denoise)),
        "--device", str(device), "--slice-axis", str(slice_axis),
    ]
    if batch_size:
        command += ["--batch-size", str(int(batch_size))]
    if model_id:
        command += ["--model", str(model_id)]
    if stated_matrix:
        command += ["--stated-matrix", f"{int(stated_matrix[0])}x{int(stated_matrix[1])}"]
    if noise_map:
        command += ["--noise-map", "auto"]
    return command


class WorkerProcess:
    """One running worker: output lines are collected by a reader thread and handed out by ``poll()``."""

    def __init__(self, command, env=None, cwd=None):
        self.command = [str(part) for part in command]
        self.progress = None  # (done, total) of the latest PROGRESS line
        self.model_id = None  # the catalogue model the worker runs (its MODEL line)
        self.log_lines = []  # every non-progress line, in order
        self.cancelled = False
        self._lines = queue.Queue()
        kwargs = {}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True  # own process group: killpg reaches the launcher's children
        self._process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, text=True, encoding="utf-8", errors="replace", bufsize=1, **kwargs,
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()

    def _read_output(self):
        for line in self._process.stdout:
            self._lines.put(line.rstrip("\r\n"))
        self._process.stdout.close()

    @property
    def pid(self):
        return self._process.pid

    @property
    def return_code(self):
        """None while running."""
        return self._process.poll()

    def is_running(self):
        return self._process.poll() is None

    def poll(self):
        """Lines printed since the last call (progress lines update ``progress``); never blocks."""
        new_lines = []
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            progress, model = parse_progress_line(line), MODEL_PATTERN.match(line.strip())
            if progress is not None:
                self.progress = progress
            elif model is not None:
                self.model_id = model.group(1)
            else:
                self.log_lines.append(line)
            new_lines.append(line)
        return new_lines

    def finished(self):
        """True once the process has exited and all its output has been read."""
        return self._process.poll() is not None and not self._reader.is_alive() and self._lines.empty()

    def wait(self, timeout=None, on_progress=None):
        """Block until the worker exits; on_progress(done, total) is called for each new progress line."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"worker did not finish within {timeout} s")
            before = self.progress
            self.poll()
            if on_progress is not None and self.progress is not None and self.progress != before:
                on_progress(*self.progress)
            time.sleep(0.05)
        self.poll()
        return self._process.returncode

    def error_message(self):
        """The worker's one-line reason for failing (an ``ERROR:`` line), else its last output line."""
        for line in reversed(self.log_lines):
            if line.startswith(ERROR_PREFIX):
                return line[len(ERROR_PREFIX):].strip()
        for line in reversed(self.log_lines):
            if line.strip():
                return line.strip()
        return f"worker exited with code {self._process.returncode}"

    def cancel(self, timeout=10.0):
        """Kill the worker and every process it started; returns once the worker is gone."""
        self.cancelled = True
        if self._process.poll() is None:
            kill_process_tree(self._process.pid)
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        self.poll()


def kill_process_tree(pid):
    """Kill a process started by WorkerProcess together with its descendants."""
    if os.name == "nt":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True, check=False)
        return
    try:
        os.killpg(pid, signal.SIGKILL)  # started with start_new_session: the group id is the worker's pid
    except ProcessLookupError:
        pass  # the whole group is already gone
