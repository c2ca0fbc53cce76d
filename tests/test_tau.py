import collections
import os

import pytest

from conftest import shared_path
from tfasc.data.tau import (DEVICE_GROUPS, SCENES, DataError, device_group, load_splits, parse_filename,
                            read_split, split_by_location)


def test_real_fold1_evaluate_counts():
    recs = read_split(shared_path("tau22_meta", "evaluation_setup", "fold1_evaluate.csv"))
    assert len(recs) == 29680
    by_dev = collections.Counter(r.device for r in recs)
    assert {d: by_dev[d] for d in ("a", "s1", "s2", "s3", "s4", "s5", "s6")} == dict.fromkeys(
        ("a", "s1", "s2", "s3", "s4", "s5", "s6"), 3300)
    assert by_dev["b"] == by_dev["c"] == 3290
    assert {r.scene for r in recs} == set(SCENES)


def test_real_fold1_test_has_no_labels_and_same_files():
    test = read_split(shared_path("tau22_meta", "evaluation_setup", "fold1_test.csv"))
    ev = read_split(shared_path("tau22_meta", "evaluation_setup", "fold1_evaluate.csv"))
    assert [r.filename for r in test] == [r.filename for r in ev]
    # without a label column the scene comes from the file name; it must agree with the labels
    assert all(a.scene == b.scene for a, b in zip(test, ev))


@pytest.mark.parametrize("name", ["split5.csv", "split10.csv"])
def test_real_dcase24_splits(name):
    recs = read_split(shared_path("tau22_meta", "dcase24_splits", name))
    devices = {r.device for r in recs}
    assert devices <= {"a", "b", "c", "s1", "s2", "s3"}  # training subsets never hold unseen devices
    assert {r.scene for r in recs} == set(SCENES)
    locs = {r.location for r in recs}
    ev_locs = {r.location for r in read_split(shared_path("tau22_meta", "evaluation_setup", "fold1_evaluate.csv"))}
    assert not locs & ev_locs


def test_real_split5_is_subset_of_split10():
    s5 = {r.filename for r in read_split(shared_path("tau22_meta", "dcase24_splits", "split5.csv"))}
    s10 = {r.filename for r in read_split(shared_path("tau22_meta", "dcase24_splits", "split10.csv"))}
    assert s5 < s10 and 0.4 < len(s5) / len(s10) < 0.6


def test_parse_filenames_tau22_and_tau19():
    r = parse_filename("audio/street_traffic-lyon-1115-42136-7-s4.wav")
    assert r == {"scene": "street_traffic", "city": "lyon", "location": "lyon-1115", "device": "s4"}
    r = parse_filename("audio/airport-barcelona-0-0-b.wav")  # TAU19/20 10-s layout
    assert r["device"] == "b" and r["location"] == "barcelona-0"
    with pytest.raises(DataError, match="device 'd' is outside the vocabulary"):
        parse_filename("audio/airport-barcelona-0-0-d.wav")
    assert device_group("s5") == "unseen" and device_group("b") == "real"
    assert set(sum(DEVICE_GROUPS.values(), ())) == {"a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6"}


def test_label_outside_vocabulary_names_file(tmp_path):
    p = tmp_path / "fold1_train.csv"
    p.write_text("filename\tscene_label\naudio/airport-lyon-1-2-0-a.wav\tbeach\n")
    with pytest.raises(DataError, match=r"fold1_train\.csv.*scene 'beach' is outside the vocabulary"):
        read_split(str(p))


def test_split_by_location_is_disjoint(tiny_dataset):
    recs = read_split(os.path.join(tiny_dataset, "evaluation_setup", "fold1_train.csv"))
    train, val = split_by_location(recs, 0.5, seed=3)
    assert train and val and len(train) + len(val) == len(recs)
    assert not {r.location for r in train} & {r.location for r in val}
    assert {r.scene for r in val} == set(SCENES)  # every scene keeps held-out locations


def test_synthetic_dataset_layout(tiny_dataset):
    s = load_splits(tiny_dataset, "fold1", 0.0)
    train_devs = {r.device for r in s.train}
    test_devs = collections.Counter(r.device for r in s.test)
    assert train_devs == {"a", "b", "c", "s1", "s2", "s3"}
    assert set(test_devs) == {"a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6"}
    assert len(set(test_devs.values())) == 1  # parallel recordings: every device records every test segment
    meta = open(os.path.join(tiny_dataset, "meta.csv")).read().splitlines()
    assert meta[0].split("\t") == ["filename", "scene_label", "identifier", "source_label"]
    s5 = load_splits(tiny_dataset, "split5", 0.0)
    assert 0 < len(s5.train) < len(s.train)


def test_missing_root_explains_layout(tmp_path):
    with pytest.raises(DataError, match=r"(?s)does not exist.*fold1_train\.csv.*tfasc data synth"):
        load_splits(str(tmp_path / "nope"))
