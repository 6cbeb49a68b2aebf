"""Helpers used by the running-it chapters (pruning, paper scale, performance, quick start)."""

import pytest

from latentkit.book import show_error


def _raise(msg):
    raise FileNotFoundError(msg)


def test_show_error_wraps_at_width(capsys):
    msg = "looked in /tmp/xyz/cifar-10-batches-py and " + "did not find data " * 12
    show_error(lambda: _raise(msg), {"/tmp/xyz": "<data_root>"})
    out = capsys.readouterr().out
    lines = out.rstrip("\n").split("\n")
    assert len(lines) > 1 and all(len(line) <= 80 for line in lines)
    assert lines[0].startswith("FileNotFoundError: looked in <data_root>/cifar-10-batches-py")
    assert " ".join(out.split()) == " ".join(
        f"FileNotFoundError: {msg}".replace("/tmp/xyz", "<data_root>").split()
    )


def test_show_error_keeps_long_words_and_one_line_option(capsys):
    path = "/a/" + "b" * 100
    show_error(lambda: _raise(f"missing {path}"), width=40)
    assert path in capsys.readouterr().out.split()
    show_error(lambda: _raise("x " * 60), width=None)
    assert capsys.readouterr().out.count("\n") == 1


def test_show_error_no_error_and_checks(capsys):
    show_error(lambda: None)
    assert capsys.readouterr().out == "no error\n"
    with pytest.raises(ValueError, match="width"):
        show_error(lambda: None, width=5)
    with pytest.raises(TypeError, match="width"):
        show_error(lambda: None, width=8.0)
