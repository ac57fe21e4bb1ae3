import os
import signal
import time

import numpy as np
import pytest

from hybridmix.transforms import storage
from hybridmix.transforms.storage import flush_writes, read_range, write_buffers_behind


def test_a_file_written_behind_is_whole_after_the_flush(tmp_path, slow_writer):
    values = np.arange(1000, dtype=np.int64)
    path = str(tmp_path / "spill" / "a.bin")
    write_buffers_behind(path, [memoryview(values).cast("B"), b"tail"])
    flush_writes()
    with open(path, "rb") as fh:
        assert fh.read() == values.tobytes() + b"tail"


def test_a_read_waits_for_the_files_this_thread_still_has_to_write(tmp_path, slow_writer):
    path = str(tmp_path / "b.bin")
    write_buffers_behind(path, [b"0123456789"])
    assert bytes(read_range(path, 2, 5)) == b"234"


def test_a_failed_write_behind_raises_at_the_flush(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    write_buffers_behind(str(tmp_path / "taken" / "c.bin"), [b"x"])
    with pytest.raises(OSError):
        flush_writes()
    flush_writes()  # reported once: the next bundle starts clean


def test_writes_behind_hold_at_most_the_budget(tmp_path, slow_writer, monkeypatch):
    monkeypatch.setattr(storage, "WRITE_BEHIND_BYTES", 1500)
    for i in range(4):
        write_buffers_behind(str(tmp_path / f"{i}.bin"), [bytes(1000)])
        # A second 1,000-byte file would go over the budget: the first must be written by then.
        assert (tmp_path / f"{i - 1}.bin").exists() or i == 0
    flush_writes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{i}.bin" for i in range(4)]


def test_abandoned_writes_never_land(tmp_path, slow_writer):
    for i in range(5):
        write_buffers_behind(str(tmp_path / "spill" / f"{i}.bin"), [b"x"])
    storage.abandon_writes()  # a failed run: the one under way finishes, the rest are dropped
    landed = len(list((tmp_path / "spill").iterdir())) if (tmp_path / "spill").exists() else 0
    assert landed <= 1
    time.sleep(0.5)
    assert (len(list((tmp_path / "spill").iterdir())) if (tmp_path / "spill").exists() else 0) == landed
    flush_writes()  # nothing left to answer for
    write_buffers_behind(str(tmp_path / "after.bin"), [b"y"])  # the next run gets a writer again
    flush_writes()
    assert (tmp_path / "after.bin").read_bytes() == b"y"


def test_a_forked_process_gets_a_writer_of_its_own(tmp_path, slow_writer):
    write_buffers_behind(str(tmp_path / "parent.bin"), [b"p"])
    flush_writes()  # the parent's writer thread exists now; a forked child does not inherit it
    # A write still pending at the fork is the parent's to finish; the child must not wait for it.
    write_buffers_behind(str(tmp_path / "late.bin"), [b"l"])
    pid = os.fork()
    if pid == 0:
        try:
            write_buffers_behind(str(tmp_path / "child.bin"), [b"c"])
            flush_writes()
        finally:
            os._exit(0)
    deadline = time.monotonic() + 20
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the child's write never happened")
        time.sleep(0.05)
    assert (tmp_path / "child.bin").read_bytes() == b"c"
    flush_writes()
    assert (tmp_path / "late.bin").read_bytes() == b"l"
