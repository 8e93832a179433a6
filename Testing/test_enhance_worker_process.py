"""The worker process manager: progress parsing, output collection, error reporting and cancelling a whole
process tree (PythonSlicer is a launcher: killing only it would leave the computation running)."""

import os
import sys
import textwrap
import time

import pytest

from MRSuperResLib import worker_process


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("PROGRESS 3/20", (3, 20)),
        ("PROGRESS 0/7\n", (0, 7)),
        ("  PROGRESS 12 / 40  ", (12, 40)),
        ("PROGRESS 1/0", None),  # no total: not a progress report
        ("PROGRESS x/5", None),
        ("progress 1/2", None),
        ("WARNING: out of GPU memory", None),
        ("", None),
    ],
)
def test_parse_progress_line(line, expected):
    assert worker_process.parse_progress_line(line) == expected


def test_worker_command_carries_every_setting():
    command = worker_process.build_worker_command(
        "in.nrrd", "out.nrrd", scale=3, denoise=0.25, device="cpu", slice_axis="j", batch_size=4,
        model_id="mrsr-unet16-v1", python="/opt/PythonSlicer", stated_matrix=(256, 192), noise_map=True,
    )
    assert command[:2] == ["/opt/PythonSlicer", str(worker_process.WORKER_SCRIPT)]
    assert worker_process.WORKER_SCRIPT.is_file()
    pairs = dict(zip(command[2::2], command[3::2]))
    assert pairs == {"--input": "in.nrrd", "--output": "out.nrrd", "--scale": "3", "--denoise": "0.25",
                     "--device": "cpu", "--slice-axis": "j", "--batch-size": "4", "--model": "mrsr-unet16-v1",
                     "--stated-matrix": "256x192", "--noise-map": "auto"}
    from MRSuperResLib import worker

    parsed = worker.build_parser().parse_args(command[2:])
    assert parsed.stated_matrix == (256, 192) and parsed.noise_map == "auto"
    defaults = worker_process.build_worker_command("a", "b", python="py")
    assert "--batch-size" not in defaults and "--model" not in defaults and "--stated-matrix" not in defaults
    assert "--noise-map" not in defaults and worker.build_parser().parse_args(defaults[2:]).noise_map == "off"


def python_script(tmp_path, body):
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, "-u", str(path)]


def test_progress_and_log_lines_are_collected_in_order(tmp_path):
    command = python_script(tmp_path, """
        import sys
        print("starting")
        for i in range(1, 4):
            print(f"PROGRESS {i}/3")
        print("WARNING: slow", file=sys.stderr)
        print("done")
    """)
    worker = worker_process.WorkerProcess(command)
    seen = []
    assert worker.wait(timeout=30, on_progress=lambda done, total: seen.append((done, total))) == 0
    assert worker.progress == (3, 3)
    assert seen and seen[-1] == (3, 3) and seen == sorted(seen)
    assert worker.log_lines == ["starting", "WARNING: slow", "done"]
    assert worker.finished() and not worker.is_running() and worker.return_code == 0


def test_error_message_is_the_workers_error_line(tmp_path):
    command = python_script(tmp_path, """
        import sys
        print("PROGRESS 1/5")
        print("ERROR: input has 4 dimensions")
        print("trailing noise")
        sys.exit(2)
    """)
    worker = worker_process.WorkerProcess(command)
    assert worker.wait(timeout=30) == 2
    assert worker.error_message() == "input has 4 dimensions"


def test_error_message_falls_back_to_the_last_line(tmp_path):
    worker = worker_process.WorkerProcess(python_script(tmp_path, "raise SystemExit('plain failure')"))
    assert worker.wait(timeout=30) == 1
    assert worker.error_message() == "plain failure"


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child may linger as a zombie until its (dead) parent is reaped by init.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(os.name == "nt", reason="POSIX process groups")
def test_cancel_kills_the_launcher_and_its_children(tmp_path):
    # Like PythonSlicer: a launcher process that runs the real computation in a child process.
    child_pid_file = tmp_path / "child.pid"
    command = python_script(tmp_path, f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c",
            "import time\\nfor i in range(600):\\n    print(f'PROGRESS {{i}}/600', flush=True)\\n    time.sleep(0.1)"])
        open({str(child_pid_file)!r}, "w").write(str(child.pid))
        child.wait()
    """)
    worker = worker_process.WorkerProcess(command)
    deadline = time.monotonic() + 30
    while worker.progress is None and time.monotonic() < deadline:
        worker.poll()
        time.sleep(0.05)
    assert worker.progress is not None, "the grandchild never reported progress"
    child_pid = int(child_pid_file.read_text())
    assert pid_alive(child_pid)

    worker.cancel(timeout=10)
    assert worker.cancelled and not worker.is_running() and worker.return_code != 0
    deadline = time.monotonic() + 10
    while pid_alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child_pid), "the computation child survived the cancel"
    worker.cancel()  # cancelling twice is harmless


def test_wait_times_out_on_a_hung_worker(tmp_path):
    worker = worker_process.WorkerProcess(python_script(tmp_path, "import time; time.sleep(60)"))
    try:
        with pytest.raises(TimeoutError):
            worker.wait(timeout=0.3)
    finally:
        worker.cancel()
    assert not worker.is_running()
