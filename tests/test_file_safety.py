"""Output files never destroy a user's data: what is not a regular file is written into or refused, never
replaced; rewrites keep permission bits and symlinks, reach the disk before the rename and leave no temp file on
failure (an exception, a full disk, kill -9); the .npz beside a graph never overwrites a file it did not write; and
array names an .npz cannot hold are refused, while odd-but-legal ones round-trip."""

import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import zipfile

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import cgtools
from cgtools.errors import CgError
from cgtools.files import MAX_MEMBER_NAME, write_atomic, write_npz
from cgtools.io import convert
from helpers import EXAMPLES, cgtools_command, error_of, run_cli, run_in_process

LECTURE = EXAMPLES / "affine_square.json"
WIDE = 1200  # elements of the weight below: over the 1,000 written inline, so it goes into the .npz


def temp_files(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def wide_graph(path):
    """A graph whose param W (4×300) is saved into `<stem>.npz` beside `path`; its input is x (n×4)."""
    weight = np.random.default_rng(0).standard_normal((4, 300)) / 10
    doc = {"cgtools": "1.0", "inputs": [{"name": "x", "dtype": "float64"}],
           "params": [{"name": "W", "value": weight.tolist()}],
           "nodes": [{"op": "MatMul", "inputs": ["x", "W"], "outputs": ["h"]},
                     {"op": "Mul", "inputs": ["h", "h"], "outputs": ["s"]},
                     {"op": "ReduceMean", "inputs": ["s"], "outputs": ["L"], "attrs": {"keepdims": 0}}],
           "outputs": ["L"], "loss": "L"}
    cgtools.load(doc).save(path)
    return path


def wide_onnx(path, name="W"):
    """An ONNX model y = x @ W whose initializer (4×300, named `name`) goes into an .npz on convert."""
    weight = helper.make_tensor(name, TensorProto.FLOAT, [4, 300], np.ones(WIDE, np.float32))
    graph = helper.make_graph([helper.make_node("MatMul", ["x", name], ["y"])], "wide",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 300])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


# --- outputs that are not regular files ---

def test_devices_are_written_into_never_replaced(capsys):
    done = run_in_process(capsys, "render", LECTURE, "-f", "svg", "-o", "/dev/null")
    assert done.returncode == 0, done.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    done = run_in_process(capsys, "render", LECTURE, "-f", "svg", "-o", "/dev/full")
    assert done.returncode == 1 and "error: /dev/full: cannot write: No space left on device" in done.stderr
    assert "Traceback" not in done.stderr and stat.S_ISCHR(os.stat("/dev/full").st_mode)
    assert "No space left" in error_of(write_atomic, "/dev/full", lambda f: f.write(b"x" * 10))


def test_dev_stdout_writes_where_stdout_goes_without_truncating_it(tmp_path):
    piped = subprocess.run([*cgtools_command(), "render", str(LECTURE), "-f", "dot", "-o", "/dev/stdout"],
                           capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and piped.stdout.startswith("digraph"), piped.stderr
    log = tmp_path / "log.txt"
    log.write_text("earlier lines\n")
    with open(log, "a") as appended:  # `>> log.txt`: the drawing is appended, the log kept
        done = subprocess.run([*cgtools_command(), "new", "c = a*x", "-o", "/dev/stdout"], stdout=appended,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert log.read_text().startswith("earlier lines\n{") and stat.S_ISREG(os.stat(log).st_mode)


def test_a_fifo_nobody_reads_is_refused_at_once_and_one_being_read_is_written_into(tmp_path):
    fifo = tmp_path / "drawing.dot"
    os.mkfifo(fifo)
    done = run_cli("render", LECTURE, "-o", fifo)  # run_cli's timeout would fail a hang
    assert done.returncode == 1 and "FIFO (named pipe) that no process is reading" in done.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and temp_files(tmp_path) == []
    reading = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader; the drawing fits in the pipe's buffer
    try:
        done = run_cli("render", LECTURE, "-o", fifo)
        assert done.returncode == 0, done.stderr
        os.set_blocking(reading, True)
        assert os.read(reading, 1 << 16).startswith(b"digraph")
    finally:
        os.close(reading)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_folders_and_sockets_are_refused(tmp_path, capsys):
    folder = tmp_path / "out.svg"
    folder.mkdir()
    assert "found a folder" in error_of(write_atomic, folder, lambda f: f.write(b"x"))
    done = run_in_process(capsys, "render", LECTURE, "-o", folder)
    assert done.returncode == 1 and "folder" in done.stderr and folder.is_dir()
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "s.svg"))
        done = run_in_process(capsys, "render", LECTURE, "-o", tmp_path / "s.svg")
        assert done.returncode == 1 and "found a socket" in done.stderr
        assert stat.S_ISSOCK(os.stat(tmp_path / "s.svg").st_mode)
    assert temp_files(tmp_path) == []


def test_a_symlink_keeps_pointing_at_its_file_which_is_replaced(tmp_path):
    real = tmp_path / "real.svg"
    real.write_text("old")
    link = tmp_path / "link.svg"
    link.symlink_to(real.name)
    write_atomic(link, lambda f: f.write(b"new"))
    assert link.is_symlink() and os.readlink(link) == "real.svg" and real.read_text() == "new"
    dangling = tmp_path / "dangling.svg"
    dangling.symlink_to("made.svg")  # as `>` does, the file the link names is made
    write_atomic(dangling, lambda f: f.write(b"made"))
    assert dangling.is_symlink() and (tmp_path / "made.svg").read_text() == "made"


def test_a_name_of_255_bytes_gets_a_temp_file_that_fits(tmp_path):
    longest = tmp_path / ("名" * 83 + ".svg")  # 253 bytes, near NAME_MAX
    write_atomic(longest, lambda f: f.write(b"x"))
    assert longest.read_bytes() == b"x" and temp_files(tmp_path) == []


# --- permission bits, fsync, temp files ---

def test_permission_bits_are_kept_and_new_files_follow_the_umask(tmp_path, capsys):
    private = tmp_path / "private.svg"
    private.write_text("old")
    private.chmod(0o600)
    assert run_in_process(capsys, "render", LECTURE, "-o", private).returncode == 0
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600 and private.read_text().startswith("<?xml")
    previous = os.umask(0o027)
    try:
        write_atomic(tmp_path / "new.svg", lambda f: f.write(b"x"))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "new.svg").st_mode) == 0o640


def test_a_read_only_file_is_not_replaced(tmp_path, monkeypatch):
    """As a shell's `>` would: refused where the file may not be written, replaced by root, who may write any."""
    locked = tmp_path / "locked.svg"
    locked.write_text("keep")
    locked.chmod(0o444)
    if os.geteuid() == 0:
        write_atomic(locked, lambda f: f.write(b"x"))
        assert locked.read_text() == "x" and stat.S_IMODE(os.stat(locked).st_mode) == 0o444
        locked.write_text("keep")
        real_access = os.access  # an ordinary user, as far as the permission check can tell
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: mode != os.W_OK and real_access(path, mode, **kw))
    assert "read-only" in error_of(write_atomic, locked, lambda f: f.write(b"x"))
    assert locked.read_text() == "keep"


def test_the_temp_file_reaches_the_disk_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", lambda *a: (events.append("rename"), real_replace(*a)))
    write_atomic(tmp_path / "out.svg", lambda f: f.write(b"x"))
    assert events == ["fsync file", "rename", "fsync folder"]


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError, CgError])
def test_the_temp_file_is_removed_on_every_failure_and_the_old_file_kept(tmp_path, failure):
    target = tmp_path / "out.svg"
    target.write_text("old")

    def write(f):
        f.write(b"half")
        raise failure("stopped")

    with pytest.raises(CgError if failure is OSError else failure):
        write_atomic(target, write)
    assert target.read_text() == "old" and temp_files(tmp_path) == []


def test_a_file_size_limit_gives_an_error_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "lecture.svg"
    target.write_text("old")
    limited = ("import resource, signal, sys\n"
               "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG\n"
               "resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))\n"
               "from cgtools.cli import main\n"
               "main(sys.argv[1:])\n")
    done = subprocess.run([sys.executable, "-c", limited, "render", str(LECTURE), "-o", str(target)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "cannot write: File too large" in done.stderr and "Traceback" not in done.stderr
    assert target.read_text() == "old" and temp_files(tmp_path) == []


KILLED_WRITER = """
import sys, time
from pathlib import Path
from cgtools.files import write_atomic

def write(f):
    f.write(b"new" * 5_000_000)
    f.flush()
    print("writing", flush=True)
    time.sleep(60)

write_atomic(Path(sys.argv[1]), write)
"""


def test_kill_9_mid_write_keeps_the_old_file_and_the_next_write_removes_the_leftover(tmp_path):
    target = tmp_path / "model.json"
    target.write_text("old")
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline() == "writing\n"
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    leftovers = temp_files(tmp_path)
    assert target.read_text() == "old" and leftovers == [f".model.json.{writer.pid}.{leftovers[0][-12:-4]}.tmp"]
    assert os.path.getsize(tmp_path / leftovers[0]) == 15_000_000
    write_atomic(target, lambda f: f.write(b"next"))
    assert target.read_text() == "next" and temp_files(tmp_path) == []


def test_leftovers_of_live_processes_and_other_files_are_left_alone(tmp_path):
    live = tmp_path / f".out.svg.{os.getppid()}.0123abcd.tmp"  # our parent is alive: maybe mid-write
    other = tmp_path / ".out.svg.notes.tmp"
    for path in (live, other):
        path.write_text("keep")
    write_atomic(tmp_path / "out.svg", lambda f: f.write(b"x"))
    assert live.exists() and other.exists()


# --- the .npz beside a graph ---

def test_train_refuses_to_overwrite_its_own_data_with_the_weights(tmp_path, capsys):
    graph = wide_graph(tmp_path / "model.json")
    (tmp_path / "model.npz").unlink()  # the graph's weights file is where the data is put now
    np.savez(tmp_path / "model.npz", x=np.ones((8, 4)))
    graph.write_text(json.dumps({**json.loads(graph.read_text()),
                                 "params": [{"name": "W", "value": np.ones((4, 300)).tolist()}]}))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    done = run_in_process(capsys, "train", graph, "--data", tmp_path / "model.npz", "--epochs", "1")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "model.npz" in done.stderr and "an input of this command" in done.stderr and "--weights" in done.stderr
    assert "training" not in done.stderr  # refused before training, not after
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    done = run_in_process(capsys, "train", graph, "--data", tmp_path / "model.npz", "--epochs", "1",
                          "--weights", tmp_path / "weights.npz")
    assert done.returncode == 0, done.stderr
    assert np.load(tmp_path / "model.npz")["x"].shape == (8, 4)
    assert json.loads(graph.read_text())["params"][0]["value"] == {"file": "weights.npz", "key": "W"}
    assert cgtools.load(graph).leaves["W"].value.shape == (4, 300)


def test_a_graph_with_weights_is_not_sent_into_a_device(tmp_path, capsys):
    graph = wide_graph(tmp_path / "model.json")
    np.savez(tmp_path / "data.npz", x=np.ones((8, 4)))
    done = run_in_process(capsys, "train", graph, "--data", tmp_path / "data.npz", "-o", "/dev/null")
    assert done.returncode == 1 and "cannot go into a device or pipe" in done.stderr
    assert not os.path.exists("/dev/null.npz")


def test_train_refuses_to_write_the_graph_over_its_data(tmp_path, capsys):
    graph = wide_graph(tmp_path / "model.json")
    np.savez(tmp_path / "data.npz", x=np.ones((8, 4)))
    done = run_in_process(capsys, "train", graph, "--data", tmp_path / "data.npz", "-o", tmp_path / "data.npz")
    assert done.returncode == 1 and "would overwrite" in done.stderr and "data.npz" in done.stderr
    assert np.load(tmp_path / "data.npz")["x"].shape == (8, 4)


def test_a_graph_rewrites_its_own_weights_file_again_and_again(tmp_path, capsys):
    graph = wide_graph(tmp_path / "model.json")
    np.savez(tmp_path / "data.npz", x=np.ones((8, 4)))
    weights = [cgtools.load(graph).leaves["W"].value]
    for _ in range(2):
        done = run_in_process(capsys, "train", graph, "--data", tmp_path / "data.npz", "--epochs", "1",
                              "-o", graph)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-2:] == [str(graph), str(tmp_path / "model.npz")]
        weights.append(cgtools.load(graph).leaves["W"].value)
    assert not np.array_equal(weights[0], weights[1]) and not np.array_equal(weights[1], weights[2])
    assert temp_files(tmp_path) == []


def test_convert_refuses_an_npz_of_other_arrays_and_takes_weights_elsewhere(tmp_path, capsys):
    source = wide_onnx(tmp_path / "model.onnx")
    np.savez(tmp_path / "model.npz", x=np.ones((1, 4), np.float32))
    before = (tmp_path / "model.npz").read_bytes()
    done = run_in_process(capsys, "convert", source, tmp_path / "model.json")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "model.npz" in done.stderr and "1 array(s) the graph does not write there ('x')" in done.stderr
    assert "--weights" in done.stderr
    assert (tmp_path / "model.npz").read_bytes() == before and not (tmp_path / "model.json").exists()
    done = run_in_process(capsys, "convert", source, tmp_path / "model.json", "--weights", tmp_path / "w" / "W.npz")
    assert done.returncode == 1 and "cannot create a file in" in done.stderr  # no such folder
    (tmp_path / "w").mkdir()
    done = run_in_process(capsys, "convert", source, tmp_path / "model.json", "--weights", tmp_path / "w" / "W.npz")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(tmp_path / "model.json"), str(tmp_path / "w" / "W.npz")]
    np.testing.assert_array_equal(cgtools.load(tmp_path / "model.json").leaves["W"].value, np.ones((4, 300)))
    assert (tmp_path / "model.npz").read_bytes() == before
    assert "inside the graph's folder" in error_of(convert, source, tmp_path / "w" / "m.json",
                                                   weights=tmp_path / "W.npz")


def test_an_npz_that_is_no_archive_is_not_overwritten(tmp_path):
    (tmp_path / "model.npz").write_text("my notes")
    message = error_of(convert, wide_onnx(tmp_path / "model.onnx"), tmp_path / "model.json")
    assert "found another kind of file" in message and (tmp_path / "model.npz").read_text() == "my notes"


def test_a_failed_graph_write_leaves_the_old_weights_in_place(tmp_path):
    """The JSON cannot be written (its name is a socket's): its weights are written but never moved in."""
    wide_graph(tmp_path / "model.json")
    old = (tmp_path / "model.npz").read_bytes()
    os.link(tmp_path / "model.npz", tmp_path / "jammed.npz")
    graph = cgtools.load(tmp_path / "model.json")
    graph.leaves["W"].value[:] = 0
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "jammed.json"))
        assert "found a socket" in error_of(graph.save, tmp_path / "jammed.json")
    assert (tmp_path / "jammed.npz").read_bytes() == old and temp_files(tmp_path) == []


# --- array names in an .npz ---

def round_trip(arrays: dict) -> dict:
    buffer = io.BytesIO()
    write_npz(buffer, arrays)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


ODD_NAMES = ["with space", "Gewicht·ä", "名前", "/layer1/conv/weight", "../up", "a/b/", "x.npy", "y.npy.npy",
             "file", "allow_pickle", "", "\x1b[2J", "a" * (MAX_MEMBER_NAME - 1)]


def test_odd_but_legal_names_round_trip():
    arrays = {name: np.full(3, i) for i, name in enumerate(ODD_NAMES)}
    back = round_trip(arrays)
    assert list(back) == ODD_NAMES
    for name in ODD_NAMES:
        np.testing.assert_array_equal(back[name], arrays[name])


@pytest.mark.parametrize(("name", "why"), [("a\0b", "cut its name at the NUL"), ("a\ud800", "lone surrogate"),
                                           ("é" * 40000, "80,000 bytes"), ("ok.npy", "read the second as the first")])
def test_names_an_npz_would_mangle_are_refused(name, why):
    assert why in error_of(write_npz, io.BytesIO(), {"ok": np.zeros(1), name: np.zeros(1)})


NAMES = st.lists(st.text(max_size=12) | st.text(max_size=3).map(lambda k: k + ".npy"), min_size=1, max_size=4,
                 unique=True)


def names_round_trip_or_are_refused(names):
    arrays = {name: np.full(2, i) for i, name in enumerate(names)}
    buffer = io.BytesIO()
    try:
        write_npz(buffer, arrays)
    except CgError:
        assert buffer.getvalue() == b""  # refused before a byte was written
        assert any("\0" in k or any(0xD800 <= ord(c) < 0xE000 for c in k) or k + ".npy" in arrays for k in arrays)
        return
    back = round_trip(arrays)
    assert list(back) == names
    for name in names:
        np.testing.assert_array_equal(back[name], arrays[name])


@settings(max_examples=300, deadline=None)
@given(NAMES)
def test_any_name_round_trips_or_is_refused_before_writing(names):
    names_round_trip_or_are_refused(names)


@pytest.mark.slow
@settings(max_examples=10_000, deadline=None)
@given(NAMES)
def test_any_name_round_trips_or_is_refused_many_cases(names):
    names_round_trip_or_are_refused(names)


def test_convert_refuses_an_initializer_name_with_a_nul(tmp_path, capsys):
    source = wide_onnx(tmp_path / "model.onnx", name="W\0evil")
    done = run_in_process(capsys, "convert", source, tmp_path / "model.json")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    # refused where the model is read, naming the initializer, before anything is written
    assert "initializer 'W\\x00evil': found a NUL character in a name" in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]


def test_weights_members_are_what_the_graph_names(tmp_path):
    """The .npz's members are the weights' names plus .npy, so another reader (numpy) finds them."""
    convert(wide_onnx(tmp_path / "m.onnx", name="/layer 1/W.npy"), tmp_path / "m.json")
    assert zipfile.ZipFile(tmp_path / "m.npz").namelist() == ["/layer 1/W.npy.npy"]
    assert cgtools.load(tmp_path / "m.json").leaves["/layer 1/W.npy"].value.shape == (4, 300)
