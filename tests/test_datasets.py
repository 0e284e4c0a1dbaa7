"""Dataset layouts, label matching and shards (i3d.inputs.datasets) on synthetic files; one check on the dev set."""

from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path

import pytest
from support import SHARED

from i3d.errors import InputError, OptionError
from i3d.inputs.dataset_items import Dataset, ListOptions, VideoItem, parse_shard, shard
from i3d.inputs.datasets import load_dataset
from i3d.inputs.labels import match_labels, normalise_label, read_label_map
from i3d.inputs.video import VIDEO_EXTENSIONS
from i3d.weights.sets import get_weight_set

DEVSET = SHARED / "devset"
CATEGORIES = get_weight_set("rgb", "kinetics").categories


def touch(root: Path, *names: str) -> None:
    """Empty files at ``root/name`` (nothing here decodes them)."""
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def keys(items) -> list[str]:
    return [item.key for item in items]


def labels(dataset: Dataset) -> dict[str, str | None]:
    return {item.key: item.label for item in dataset.items}


def refused(path: Path, text: str, match: str) -> None:
    """Write the list file ``path`` and check that loading it is refused with ``match``."""
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        load_dataset(path)


# ------------------------------------------------------------------------------------------ folders


def test_folder_recursive_sorted_hidden_skipped(tmp_path):
    touch(tmp_path, "b.mp4", "a/z.AVI", "a/b/c.webm", "notes.txt", "frame.png", ".hidden.mp4", ".cache/x.mp4",
          "a/.tmp/y.mkv")
    ds = load_dataset(tmp_path)
    assert ds.layout == "folder"
    assert ds.root == tmp_path
    assert keys(ds.items) == ["a/b/c.webm", "a/z.AVI", "b.mp4"]
    assert ds.items[0].path == tmp_path / "a" / "b" / "c.webm"
    assert all(item.label is None for item in ds.items)
    assert ds.missing == ()


def test_folder_symlink_loop_and_dangling_link(tmp_path):
    touch(tmp_path, "a/one.mp4")
    os.symlink(tmp_path / "a", tmp_path / "a" / "loop")  # a/loop -> a: a loop
    os.symlink(tmp_path / "gone.mp4", tmp_path / "a" / "dangling.mp4")
    ds = load_dataset(tmp_path)
    assert keys(ds.items) == ["a/one.mp4"]
    assert keys(ds.missing) == ["a/dangling.mp4"]


def test_folder_without_videos_is_an_error(tmp_path):
    touch(tmp_path, "readme.txt", "x/frame_0001.jpg")
    with pytest.raises(InputError, match="holds no videos"):
        load_dataset(tmp_path)


def test_class_folders(tmp_path):
    touch(tmp_path, "archery/1.mp4", "archery/deep/2.mp4", "riding_a_bike/3.mov")
    ds = load_dataset(tmp_path, ListOptions(labels_from_folders=True))
    assert ds.layout == "class-folders"
    assert labels(ds) == {"archery/1.mp4": "archery", "archery/deep/2.mp4": "archery",
                          "riding_a_bike/3.mov": "riding_a_bike"}


def test_class_folders_refuse_a_video_in_the_root(tmp_path):
    touch(tmp_path, "archery/1.mp4", "stray.mp4")
    with pytest.raises(InputError, match=r"stray\.mp4: is directly in"):
        load_dataset(tmp_path, ListOptions(labels_from_folders=True))


def test_options_that_do_not_apply_are_refused(tmp_path):
    touch(tmp_path, "a.mp4")
    (tmp_path / "list.txt").write_text("a.mp4\n")
    with pytest.raises(OptionError) as err:
        load_dataset(tmp_path, ListOptions(path_column="file"))
    assert err.value.option == "path_column"
    with pytest.raises(OptionError) as err:
        load_dataset(tmp_path / "list.txt", ListOptions(labels_from_folders=True))
    assert err.value.option == "labels_from_folders"
    with pytest.raises(OptionError) as err:
        load_dataset(tmp_path / "list.txt", ListOptions(root=tmp_path / "nope"))
    assert err.value.option == "root"


def test_sources_that_are_not_datasets(tmp_path):
    touch(tmp_path, "clip.mp4", "data.json")
    with pytest.raises(InputError, match="a video, not a dataset"):
        load_dataset(tmp_path / "clip.mp4")
    with pytest.raises(InputError, match="not a list file"):
        load_dataset(tmp_path / "data.json")
    with pytest.raises(InputError, match="no such file or folder"):
        load_dataset(tmp_path / "absent")


# ------------------------------------------------------------------------------------------ list files


def test_csv_list_with_missing_and_other_columns(tmp_path):
    touch(tmp_path, "v/a.mp4", "v/c.mp4")
    (tmp_path / "list.csv").write_text('id,Path,Label,notes\n1,v/c.mp4,"riding, a bike",x\n'
                                       "2,v/b.mp4,archery,\n3,v/a.mp4,,y\n")
    ds = load_dataset(tmp_path / "list.csv")
    assert ds.layout == "list"
    assert [(i.key, i.label) for i in ds.items] == [("v/c.mp4", "riding, a bike"), ("v/a.mp4", None)]
    assert [(i.key, i.label, i.path) for i in ds.missing] == [("v/b.mp4", "archery", tmp_path / "v" / "b.mp4")]


def test_tsv_list_with_aliases_and_root(tmp_path):
    touch(tmp_path, "clips/x.mkv", "clips/y.mkv")
    lists = tmp_path / "meta"
    lists.mkdir()
    (lists / "list.tsv").write_text('video\tcategory\textra\n"y.mkv"\tpush up\t1\nx.mkv\tsquat\t2\n\n')
    ds = load_dataset(lists / "list.tsv", ListOptions(root=tmp_path / "clips"))
    assert ds.root == tmp_path / "clips"
    assert [(i.key, i.label) for i in ds.items] == [("x.mkv", "squat")]
    assert keys(ds.missing) == ['"y.mkv"']  # TSV is unquoted: the quotes are part of the name


def test_csv_chosen_columns_and_wrong_ones(tmp_path):
    touch(tmp_path, "a.mp4")
    (tmp_path / "l.csv").write_text("path,file,label,gold\nx.mp4,a.mp4,wrong,archery\n")
    ds = load_dataset(tmp_path / "l.csv", ListOptions(path_column="FILE", label_column="gold"))
    assert [(i.key, i.label) for i in ds.items] == [("a.mp4", "archery")]
    assert keys(load_dataset(tmp_path / "l.csv").missing) == ["x.mp4"]  # "path" comes before "file"
    with pytest.raises(InputError, match="no label column 'kinetics_label'"):
        load_dataset(tmp_path / "l.csv", ListOptions(label_column="kinetics_label"))
    refused(tmp_path / "n.csv", "name,label\na.mp4,x\n", r"n\.csv:1: no path column")
    refused(tmp_path / "t.csv", "path\tlabel\na.mp4\tx\n", "name the file .tsv")
    refused(tmp_path / "w.csv", "path,label\na.mp4,x,y\n", r"w\.csv:2: has 3 fields, the header has 2")


def test_txt_list(tmp_path):
    touch(tmp_path, "a.mp4", "my clip.mp4", "sub/b.avi", "c.webm")
    (tmp_path / "list.txt").write_text("# comment\n\na.mp4   riding a bike  \nmy clip.mp4\tarchery\n"
                                       "./sub/b.avi\n" f"{tmp_path / 'c.webm'} squat\n")
    ds = load_dataset(tmp_path / "list.txt")
    assert [(i.key, i.label) for i in ds.items] == [("a.mp4", "riding a bike"), ("my clip.mp4", "archery"),
                                                   ("sub/b.avi", None), ("c.webm", "squat")]
    assert ds.missing == ()


def test_txt_path_with_spaces_needs_a_tab(tmp_path):
    refused(tmp_path / "list.txt", "ok.mp4\nmy clip.mp4\n", r"list\.txt:2: 'my' is not a video file name")


def test_jsonl_list(tmp_path):
    touch(tmp_path, "a.mp4", "b.mp4")
    lines = [{"filename": "a.mp4", "class": "archery", "n": 1}, {"filename": "b.mp4", "class": None},
             {"filename": "c.mp4"}]
    (tmp_path / "l.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    ds = load_dataset(tmp_path / "l.jsonl")
    assert [(i.key, i.label) for i in ds.items] == [("a.mp4", "archery"), ("b.mp4", None)]
    assert [(i.key, i.label) for i in ds.missing] == [("c.mp4", None)]
    refused(tmp_path / "bad.jsonl", '{"path": "a.mp4"}\n{"path": "b.mp4", "label": 3}\n', r"bad\.jsonl:2: 'label' is 3")
    refused(tmp_path / "broken.jsonl", '{"path": "a.mp4"}\n{"path": \n', r"broken\.jsonl:2: not JSON")


def test_absolute_paths_inside_and_outside_the_root(tmp_path):
    inside, outside = tmp_path / "data", tmp_path / "elsewhere"
    touch(inside, "a.mp4")
    touch(outside, "b.mp4")
    (inside / "l.txt").write_text(f"{inside / 'a.mp4'}\n{outside / 'b.mp4'}\n")
    ds = load_dataset(inside / "l.txt")
    assert keys(ds.items) == ["a.mp4", (outside / "b.mp4").as_posix().lstrip("/")]
    assert ds.items[1].path == outside / "b.mp4"


@pytest.mark.parametrize("name,text,lines", [
    ("l.txt", "a.mp4\nb.mp4\n\n./a.mp4 x\n", (1, 4)),
    ("l.csv", "path,label\nb.mp4,\na.mp4,x\nsub/../a.mp4,y\n", (3, 4)),
    ("l.tsv", "path\n# not a comment.mp4\nb.mp4\nb.mp4\n", (3, 4)),
    ("l.jsonl", '{"path": "a.mp4"}\n\n{"path": "a.mp4"}\n', (1, 3)),
])
def test_duplicates_are_refused_naming_both_lines(tmp_path, name, text, lines):
    (tmp_path / name).write_text(text)
    with pytest.raises(InputError, match=rf"{name}:{lines[1]}: .* listed twice \(first on line {lines[0]}\)"):
        load_dataset(tmp_path / name)


def test_empty_lists_are_errors(tmp_path):
    (tmp_path / "l.txt").write_text("# nothing\n\n")
    (tmp_path / "l.csv").write_text("")
    (tmp_path / "h.csv").write_text("path,label\n")
    with pytest.raises(InputError, match="lists no videos"):
        load_dataset(tmp_path / "l.txt")
    with pytest.raises(InputError, match="empty; give a header row"):
        load_dataset(tmp_path / "l.csv")
    with pytest.raises(InputError, match="lists no videos"):
        load_dataset(tmp_path / "h.csv")


# ------------------------------------------------------------------------------------------ splits


def ucf_tree(root: Path) -> Path:
    touch(root, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "Archery/v_Archery_g01_c01.avi",
          "Archery/v_Archery_g02_c01.avi")
    splits = root.parent / "ucfTrainTestlist"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 ApplyEyeMakeup\r\n2 Archery\r\n")
    (splits / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n"
                                           "Archery/v_Archery_g02_c01.avi\r\nArchery/v_Archery_g09_c01.avi\r\n")
    (splits / "trainlist01.txt").write_text("Archery/v_Archery_g01_c01.avi 2\n")
    return splits


def test_ucf_split(tmp_path):
    splits = ucf_tree(tmp_path / "UCF-101")
    ds = load_dataset(tmp_path / "UCF-101", ListOptions(split_file=splits / "testlist01.txt"))
    assert ds.layout == "ucf-split"
    assert [(i.key, i.label) for i in ds.items] == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "ApplyEyeMakeup"),
        ("Archery/v_Archery_g02_c01.avi", "Archery")]
    assert [(i.key, i.label) for i in ds.missing] == [("Archery/v_Archery_g09_c01.avi", "Archery")]
    train = load_dataset(tmp_path / "UCF-101", ListOptions(split_file=splits / "trainlist01.txt"))
    assert [(i.key, i.label) for i in train.items] == [("Archery/v_Archery_g01_c01.avi", "Archery")]


def test_ucf_split_checks_class_index(tmp_path):
    splits = ucf_tree(tmp_path / "UCF-101")
    (splits / "testlist01.txt").write_text("Archery/v_Archery_g02_c01.avi\nYoYo/v_YoYo_g01_c01.avi\n")
    with pytest.raises(InputError, match=r"testlist01\.txt:2: class 'YoYo' is not in .*classInd\.txt"):
        load_dataset(tmp_path / "UCF-101", ListOptions(split_file=splits / "testlist01.txt"))
    (splits / "classInd.txt").unlink()
    ds = load_dataset(tmp_path / "UCF-101", ListOptions(split_file=splits / "testlist01.txt"))
    assert keys(ds.items) == ["Archery/v_Archery_g02_c01.avi"] and keys(ds.missing) == ["YoYo/v_YoYo_g01_c01.avi"]
    with pytest.raises(OptionError) as err:
        load_dataset(tmp_path / "UCF-101", ListOptions(split_file=splits / "testlist01.txt", root=tmp_path))
    assert err.value.option == "root"


def test_hmdb_split_file_and_folder(tmp_path):
    root = tmp_path / "hmdb51"
    touch(root, "brush_hair/a.avi", "brush_hair/b.avi", "brush_hair/c.avi", "cartwheel/d.avi")
    splits = tmp_path / "split1"
    splits.mkdir()
    (splits / "brush_hair_test_split1.txt").write_text("a.avi 1 \nb.avi 2 \nc.avi 0 \nz.avi 2 \n")
    (splits / "cartwheel_test_split1.txt").write_text("d.avi 2\n")
    one = load_dataset(root, ListOptions(split_file=splits / "brush_hair_test_split1.txt"))
    assert one.layout == "ucf-split"
    assert [(i.key, i.label) for i in one.items] == [("brush_hair/b.avi", "brush_hair")]
    assert keys(one.missing) == ["brush_hair/z.avi"]
    both = load_dataset(root, ListOptions(split_file=splits))
    assert [(i.key, i.label) for i in both.items] == [("brush_hair/b.avi", "brush_hair"),
                                                      ("cartwheel/d.avi", "cartwheel")]
    (splits / "cartwheel_test_split2.txt").write_text("d.avi 1\n")
    with pytest.raises(InputError, match="holds files for splits 1, 2"):
        load_dataset(root, ListOptions(split_file=splits))
    (splits / "brush_hair_test_split1.txt").write_text("a.avi 3\n")
    with pytest.raises(InputError, match=r"brush_hair_test_split1\.txt:1: expected 'name.avi 0\|1\|2'"):
        load_dataset(root, ListOptions(split_file=splits / "brush_hair_test_split1.txt"))



def test_no_list_can_name_outputs_outside_the_output_folder(tmp_path):
    """Keys name records and features under --out: '..' parts and over-long names are refused with their line,
    in every layout (HMDB51 and UCF101 splits, lists), and the batch folder refuses them too."""
    from i3d.tasks.batch.records import record_path

    root = tmp_path / "hmdb51"
    touch(root, "brush_hair/a.avi")
    split = tmp_path / "brush_hair_test_split1.txt"
    split.write_text("a.avi 2\n../../../x/v.avi 2\n")
    with pytest.raises(InputError, match=r"split1\.txt:2: '\.\./\.\./\.\./x/v\.avi' is not a file name in brush_hair/"):
        load_dataset(root, ListOptions(split_file=split))
    split.write_text(".. 2\n")
    with pytest.raises(InputError, match=r"split1\.txt:1: '\.\.' is not a file name"):
        load_dataset(root, ListOptions(split_file=split))
    long = "v" * 5000 + ".mp4"
    refused(tmp_path / "long.txt", f"a.mp4 x\n{long} y\n", r"long\.txt:2: 'v{80}'\.\.\. has a name of 5004 bytes")
    with pytest.raises(InputError, match="would name outputs outside the output folder"):
        record_path(tmp_path / "out", "../escape")
    with pytest.raises(InputError, match="has a name of 201 bytes"):
        record_path(tmp_path / "out", "a/" + "b" * 201)
    assert record_path(tmp_path / "out", "a/b.mp4") == tmp_path / "out" / "results" / "a/b.mp4.json"



def test_a_list_or_label_map_that_is_a_fifo_a_device_or_too_large_is_refused_unread(tmp_path):
    from i3d.inputs.dataset_items import MAX_LIST_BYTES
    from i3d.inputs.labels import read_label_map

    fifo = tmp_path / "list.txt"
    os.mkfifo(fifo)  # nothing ever writes to it: reading it would block forever
    with pytest.raises(InputError, match=r"list\.txt: not a regular file"):
        load_dataset(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        read_label_map(fifo)
    with pytest.raises(InputError, match="/dev/zero: not a regular file"):
        read_label_map("/dev/zero")
    big = tmp_path / "big.csv"
    with open(big, "wb") as handle:
        handle.truncate(MAX_LIST_BYTES + 1)  # sparse: no disk used
    with pytest.raises(InputError, match=r"big\.csv: 67108865 bytes, more than the 64 MiB allowed here"):
        load_dataset(big)
    refused(tmp_path / "deep.jsonl", '{"path": "a.mp4"}\n' + "[" * 100000 + "]" * 100000 + "\n",
            r"deep\.jsonl:2: nested too deeply")


# ------------------------------------------------------------------------------------------ Kinetics


def test_kinetics_csv_both_placements(tmp_path):
    touch(tmp_path, "abc_000010_000020.mp4", "riding a bike/def_000001_000011.mkv",
          "hurling_(sport)/ghi_000100_000110.webm", "jkl_000005_000015.mp4.part")
    (tmp_path / "val.csv").write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "archery,abc,10,20,val,0\n"
        "riding a bike,def,1,11,val,0\n"
        '"hurling (sport)",ghi,100.0,110,val,1\n'
        "squat,jkl,5,15,val,0\n")
    ds = load_dataset(tmp_path / "val.csv")
    assert ds.layout == "kinetics-csv"
    assert [(i.key, i.label) for i in ds.items] == [
        ("abc_000010_000020.mp4", "archery"), ("riding a bike/def_000001_000011.mkv", "riding a bike"),
        ("hurling_(sport)/ghi_000100_000110.webm", "hurling (sport)")]
    assert [(i.key, i.label) for i in ds.missing] == [("jkl_000005_000015", "squat")]
    assert match_labels([i.label for i in ds.items], CATEGORIES) == {
        "archery": CATEGORIES.index("archery"), "riding a bike": CATEGORIES.index("riding a bike"),
        "hurling (sport)": CATEGORIES.index("hurling (sport)")}


def test_kinetics_csv_without_labels_and_in_another_root(tmp_path):
    touch(tmp_path / "videos", "abc_000010_000020.mp4")
    (tmp_path / "test.csv").write_text("youtube_id,time_start,time_end,split\nabc,10,20,test\nxyz,0,10,test\n")
    ds = load_dataset(tmp_path / "test.csv", ListOptions(root=tmp_path / "videos"))
    assert [(i.key, i.label) for i in ds.items] == [("abc_000010_000020.mp4", None)]
    assert keys(ds.missing) == ["xyz_000000_000010"]


def test_kinetics_csv_refuses_ambiguity(tmp_path):
    touch(tmp_path, "abc_000010_000020.mp4", "archery/abc_000010_000020.mp4")
    refused(tmp_path / "k.csv", "label,youtube_id,time_start,time_end\narchery,abc,10,20\n",
            r"k\.csv:2: clip abc_000010_000020 matches 2 files")
    refused(tmp_path / "d.csv", "label,youtube_id,time_start,time_end\na,x,1,2\nb,x,1,2\n",
            r"d\.csv:3: clip x_000001_000002 is listed twice \(first on line 2\)")
    refused(tmp_path / "t.csv", "label,youtube_id,time_start,time_end\na,x,1.5,2\n", "time_start is '1.5'")
    refused(tmp_path / "p.csv", "path,youtube_id,time_start,time_end\nabc_000010_000020.mp4,abc,10,20\n",
            "both Kinetics columns")
    ds = load_dataset(tmp_path / "p.csv", ListOptions(path_column="path"))
    assert (ds.layout, keys(ds.items)) == ("list", ["abc_000010_000020.mp4"])


# ------------------------------------------------------------------------------------------ labels


def test_normalise_label():
    assert normalise_label("riding_a_bike") == normalise_label("Riding a bike") == "riding a bike"
    assert normalise_label("  Hurling   (Sport) ") == "hurling (sport)"
    assert normalise_label("massaging person's head") == "massaging person's head"
    assert normalise_label("pull-ups") == "pull ups"
    assert normalise_label("hurling") != normalise_label("hurling (sport)")


def test_match_labels_by_name_and_map():
    labels_seen = ["Riding_a_bike", "CliffDiving", "HURLING (SPORT)", "YoYo", "riding_a_bike", None, "Skijet"]
    result = match_labels(labels_seen, CATEGORIES, {"cliff diving": "diving cliff", "Skijet": "Jetskiing"})
    assert result == {"Riding_a_bike": 267, "CliffDiving": None, "HURLING (SPORT)": 161, "YoYo": None,
                      "riding_a_bike": 267, "Skijet": 167}
    assert CATEGORIES[267] == "riding a bike" and CATEGORIES[161] == "hurling (sport)"
    assert match_labels(["CliffDiving"], CATEGORIES, {"cliffdiving": "diving cliff"}) == {"CliffDiving": 93}
    assert match_labels(["archery"], CATEGORIES, {"archery": "abseiling"}) == {"archery": 0}  # the map comes first


def test_match_labels_refuses_a_map_target_that_is_not_a_class():
    with pytest.raises(InputError, match="'YoYo' maps to 'yo-yo', which is not one of the 400 class names"):
        match_labels(["YoYo"], CATEGORIES, {"YoYo": "yo-yo"})
    with pytest.raises(InputError, match="read the same once normalised"):
        match_labels(["a"], CATEGORIES, {"Push_Up": "push up", "push up": "squat"})


def test_read_label_map(tmp_path):
    path = tmp_path / "map.tsv"
    path.write_text("label\tclass\n# UCF101 names\n\nCliffDiving\tdiving cliff\nSkijet\tjetskiing\r\n"
                    "CliffDiving\tDiving_cliff\n")
    assert read_label_map(path) == {"CliffDiving": "diving cliff", "Skijet": "jetskiing"}
    path.write_text("CliffDiving\tdiving cliff\nSkijet\tjetskiing\ncliffdiving\tswimming\n")
    with pytest.raises(InputError, match=r"map\.tsv:3: label 'cliffdiving' is mapped again.* line 1"):
        read_label_map(path)
    path.write_text("CliffDiving diving cliff\n")
    with pytest.raises(InputError, match=r"map\.tsv:1: expected 'dataset label<TAB>class name'"):
        read_label_map(path)


# ------------------------------------------------------------------------------------------ shards


def many_items(n: int = 100) -> list[VideoItem]:
    return [VideoItem(f"class{i % 7}/clip_{i:03d}.mp4", Path(f"/d/class{i % 7}/clip_{i:03d}.mp4"), None)
            for i in range(n)]


@pytest.mark.parametrize("count", [1, 3, 7])
def test_shards_partition_and_ignore_order(count):
    items = many_items()
    shuffled = items[:]
    random.Random(count).shuffle(shuffled)
    parts = [shard(items, k, count) for k in range(1, count + 1)]
    assert sorted(keys(i for part in parts for i in part)) == sorted(keys(items))  # each item exactly once
    for k, part in enumerate(parts, start=1):
        assert set(keys(shard(shuffled, k, count))) == set(keys(part))
        assert list(part) == [i for i in items if i in part]  # the given order is kept
    if count > 1:
        assert all(parts)  # 100 items over up to 7 shards: none left empty
    assert len(parts[0]) == 100 if count == 1 else len(parts[0]) < 100


def test_shard_values_are_pinned():
    # int(sha256(key), 16) % 4 + 1, computed once: a change here would move items to other shards between runs
    items = [VideoItem(k, Path(k), None) for k in ("a.mp4", "b.mp4", "c.mp4", "d.mp4")]
    assert [keys(shard(items, k, 4)) for k in range(1, 5)] == [["a.mp4", "d.mp4"], ["b.mp4"], ["c.mp4"], []]



def test_a_file_name_that_is_not_utf8_has_a_shard_and_a_record(tmp_path):
    """Names are bytes on Linux: a non-UTF-8 one is sharded by its bytes and its record round-trips."""
    from i3d.tasks.batch.records import read_record, record_path

    name = os.fsdecode(b"clip\xff.mp4")  # 'clip\udcff.mp4'
    touch(tmp_path / "videos", "a.mp4", name)
    ds = load_dataset(tmp_path / "videos")
    assert sorted(keys(ds.items)) == ["a.mp4", name]
    assert sorted(keys(shard(ds.items, 1, 2) + shard(ds.items, 2, 2))) == ["a.mp4", name]
    path = record_path(tmp_path / "out", name)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"key": name, "status": "failed", "path": name, "label": None, "label_index": None,
                                "top": [], "error": "x"}))
    assert read_record(tmp_path / "out", name)["key"] == name


def test_parse_shard():
    assert parse_shard("2/4") == (2, 4)
    assert parse_shard(" 1/1 ") == (1, 1)
    for text in ("0/4", "5/4", "1/0", "2", "a/b", "-1/4", "1/4/2", "1 / 4x", ""):
        with pytest.raises(OptionError) as err:
            parse_shard(text)
        assert err.value.option == "shard"
    with pytest.raises(OptionError, match="K must be between 1 and 3"):
        shard(many_items(), 4, 3)
    with pytest.raises(OptionError, match="count is 0"):
        shard(many_items(), 1, 0)


# ------------------------------------------------------------------------------------------ dev set


def test_video_extensions():
    assert set(VIDEO_EXTENSIONS) == {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv",
                                     ".flv", ".gif", ".3gp", ".ogv"}


@pytest.mark.skipif(not (DEVSET / "labels.tsv").is_file(), reason="../shared/devset is not beside the checkout")
def test_devset():
    ds = load_dataset(DEVSET / "labels.tsv", ListOptions(root=DEVSET / "clips", path_column="file",
                                                         label_column="kinetics_label"))
    assert (len(ds.items), len(ds.missing), ds.layout) == (41, 0, "list")
    assert sum(item.label is None for item in ds.items) == 8
    matched = match_labels((item.label for item in ds.items), CATEGORIES)
    mapped = [item for item in ds.items if item.label is not None and matched[item.label] is not None]
    assert len(mapped) == 33
    assert len({matched[item.label] for item in mapped}) == 27
    with open(DEVSET / "labels.tsv", newline="", encoding="utf-8") as handle:
        expected = {row["file"]: row["kinetics_index"] for row in csv.DictReader(handle, delimiter="\t")}
    assert {item.key: str(matched[item.label]) for item in mapped} == {k: v for k, v in expected.items() if v}
    folder = load_dataset(DEVSET / "clips")
    assert sorted(keys(folder.items)) == sorted(keys(ds.items))
