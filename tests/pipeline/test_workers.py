"""A table's worker dies with the table: SIGKILL the parent while a job runs, the worker is gone within seconds
(before, it trained on and wrote into OUT beside the resumed table)."""
import os
import signal
import subprocess
import sys
import time

import pytest

PARENT = """
import time
from dsgkd.pipeline.workers import worker_pool
pool = worker_pool(1)
pool.submit(time.sleep, 600)
while not pool._processes:
    time.sleep(0.05)
print(next(iter(pool._processes)), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for init to reap it is dead
        return f.read().split()[2] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_dies_with_its_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
        time.sleep(1.0)  # the initializer has run by the time the job is picked up
        assert _alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.time() + 10
        while _alive(worker) and time.time() < deadline:
            time.sleep(0.1)
        assert not _alive(worker)
    finally:
        parent.kill()
