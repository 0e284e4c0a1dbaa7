"""Outputs never destroy inputs, and files that are not what they claim are refused before they are read."""

import os

import pytest

from i3d.errors import OptionError, WeightsError
from i3d.files import refuse_output_over_input


def test_an_output_that_is_an_input_is_refused_by_name_link_and_inode(tmp_path):
    video = tmp_path / "in.mp4"
    video.write_bytes(b"video")
    (tmp_path / "link.mp4").symlink_to(video)
    os.link(video, tmp_path / "hard.mp4")
    for output in (video, tmp_path / "link.mp4", tmp_path / "hard.mp4", tmp_path / "sub" / ".." / "in.mp4"):
        with pytest.raises(OptionError, match=r"is also an input \(.*in.mp4\)") as caught:
            refuse_output_over_input({"annotate": output}, [video])
        assert caught.value.option == "annotate"
    with pytest.raises(OptionError, match="is also an input"):
        refuse_output_over_input({"save_stats": video}, [tmp_path / "link.mp4"])  # the input given as the link
    assert video.read_bytes() == b"video"


def test_an_output_inside_an_input_folder_or_holding_an_input_is_refused(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "1.png").write_bytes(b"png")
    with pytest.raises(OptionError, match="inside the input folder"):
        refuse_output_over_input({"plot": frames / "1.png"}, [frames])
    with pytest.raises(OptionError, match="inside the input folder"):
        refuse_output_over_input({"plot": frames / "new.png"}, [frames])
    with pytest.raises(OptionError, match="holds the input"):
        refuse_output_over_input({"out": tmp_path}, [frames / "1.png"])


def test_outputs_apart_from_the_inputs_pass(tmp_path):
    (tmp_path / "in.mp4").write_bytes(b"video")
    refuse_output_over_input({"annotate": tmp_path / "out.mp4", "plot": None, "out": tmp_path / "new"},
                             [tmp_path / "in.mp4", None])


@pytest.mark.parametrize("kind", ["fifo", "device", "huge"])
def test_a_checkpoint_index_that_is_not_one_is_refused_unread(tmp_path, kind):
    from i3d.weights.checkpoint import MAX_INDEX_BYTES, compare_with_index

    path = tmp_path / "model.ckpt.index"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "huge":
        with open(path, "wb") as handle:
            handle.truncate(MAX_INDEX_BYTES * 100)  # sparse: a few KB on disk
    else:
        path = "/dev/zero"
    with pytest.raises(WeightsError, match="not a regular file|more than any checkpoint index"):
        compare_with_index({}, path)


def test_preprocess_never_writes_among_or_over_its_input(tmp_path, capsys):
    from i3d.commands.preprocess import main

    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "1.png").write_bytes(b"png")
    for extra in (["--out", str(frames)], ["--out", str(tmp_path / "o"), "--preview", str(frames / "1.png")]):
        assert main([str(frames), "--type", "rgb", *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "inside the input folder" in err, err
    assert sorted(p.name for p in frames.iterdir()) == ["1.png"] and not (tmp_path / "o").exists()
