import gzip
import hashlib
import http.server
import threading
from functools import partial

import numpy as np
import pytest

from mnistdiff import data
from mnistdiff.data import locate as loc
from idx_support import write_idx
from mnistdiff.data.idx import DataFileError, IMAGES_MAGIC, read_idx, read_split


def test_reads_gzip_and_raw_idx(tmp_path):
    array = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "a-idx3-ubyte.gz", array)
    write_idx(tmp_path / "a-idx3-ubyte", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz", IMAGES_MAGIC), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte", IMAGES_MAGIC), array)


def test_load_gives_uint8_images_and_labels(idx_folder):
    images, labels = data.load("mnist", "train", idx_folder)
    assert images.shape == (64, 1, 28, 28) and images.dtype.is_floating_point is False
    assert labels.shape == (64,)
    x = data.to_model_range(images)
    assert x.min() == -1 and x.max() == 1
    assert (data.to_uint8(x) == images).all()


def test_truncated_file_is_named_in_the_error(idx_folder):
    path = idx_folder / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataFileError, match="train-images-idx3-ubyte.gz.*truncated"):
        data.load("mnist", "train", idx_folder)


def test_bad_magic_and_broken_gzip(tmp_path):
    bad = tmp_path / "x-idx3-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x01" + bytes(12))
    with pytest.raises(DataFileError, match="magic"):
        read_idx(bad, IMAGES_MAGIC)
    broken = tmp_path / "y-idx3-ubyte.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(DataFileError, match="y-idx3-ubyte.gz"):
        read_idx(broken, IMAGES_MAGIC)


def test_label_count_must_match(tmp_path):
    write_idx(tmp_path / "i.gz", np.zeros((3, 28, 28), np.uint8))
    write_idx(tmp_path / "l.gz", np.zeros((2,), np.uint8))
    with pytest.raises(DataFileError, match="3 images"):
        read_split(tmp_path / "i.gz", tmp_path / "l.gz")


def test_wrong_image_size(tmp_path):
    write_idx(tmp_path / "i.gz", np.zeros((3, 32, 32), np.uint8))
    write_idx(tmp_path / "l.gz", np.zeros((3,), np.uint8))
    with pytest.raises(DataFileError, match="32, 32"):
        read_split(tmp_path / "i.gz", tmp_path / "l.gz")


def test_env_variable_and_dataset_subfolder(idx_folder, monkeypatch):
    monkeypatch.setenv("MNISTDIFF_DATA", str(idx_folder.parent))
    (idx_folder.parent / "mnist").symlink_to(idx_folder)
    images, _ = data.load("mnist", "test")
    assert len(images) == 64


def test_missing_folder_says_which_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTDIFF_DATA", str(tmp_path))
    with pytest.raises(DataFileError, match="MNISTDIFF_DATA"):
        data.load("mnist", "train")
    with pytest.raises(DataFileError, match="--data-dir"):
        data.load("mnist", "train", tmp_path)


def _serve(folder):
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_download_falls_through_to_a_working_mirror_and_checks_md5(idx_folder, tmp_path):
    server = _serve(idx_folder)
    try:
        name = "train-images-idx3-ubyte.gz"
        md5 = hashlib.md5((idx_folder / name).read_bytes()).hexdigest()
        dead = "http://127.0.0.1:9/"  # the discard port: connection refused
        good = f"http://127.0.0.1:{server.server_address[1]}/"
        path = loc.fetch(name, tmp_path / "cache", [dead, good], md5, timeout=5)
        assert path.read_bytes() == (idx_folder / name).read_bytes()
        assert [p.name for p in (tmp_path / "cache").iterdir()] == [name]  # no temp files left
        with pytest.raises(DataFileError, match="md5"):
            loc.fetch(name, tmp_path / "other", [good], "0" * 32, timeout=5)
        assert not (tmp_path / "other" / name).exists()
    finally:
        server.shutdown()


def test_offline_message_names_the_flag_and_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("MNISTDIFF_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setitem(loc.MIRRORS, "mnist", ["http://127.0.0.1:9/"])
    with pytest.raises(DataFileError, match="--data-dir.*MNISTDIFF_DATA"):
        data.load("mnist", "train")


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("cifar10", "train")


def test_fashion_mnist_is_found_where_debian_puts_it(idx_folder, tmp_path, monkeypatch):
    monkeypatch.delenv("MNISTDIFF_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setitem(loc.SYSTEM_DIRS, "fashion-mnist", [idx_folder])
    images, labels = data.load("fashion-mnist", "train")
    assert images.shape == (64, 1, 28, 28)
