"""Results storage (dlbench/results/store.py) and the schema check on read
(dlbench/results/schema.py): where a run's document goes, that no run ever
takes another's file, which stored runs are found and in what order, and
what an old or malformed document becomes."""

import os

import pytest

from dlbench.errors import InputError
from dlbench.results import schema, store

ENV = {"hostname": "Bench-Box", "cpu": "AMD EPYC 9654", "logical_cores": 2, "git_commit": "abc_123"}


# ------------------------------------------------------------ machine folders
def test_the_machine_id_of_a_known_machine_never_changes():
    """Runs stored by earlier versions must land in the same folder as new ones."""
    assert store.machine_id(ENV) == "bench-box-6c23d998"
    assert store.machine_id({}) == "unknown-58ed2f5b"


def test_a_long_host_name_is_cut_to_24_characters_before_the_hash():
    env = {"hostname": "a" * 30 + ".example", "cpu": "x", "logical_cores": 4}
    assert store.machine_id(env) == "a" * 24 + "-c762d806"


def test_stamp_drops_the_separators_of_the_creation_time():
    assert store.stamp("2026-11-28T16:00:05Z") == "20261128T160005Z"


# ------------------------------------------------------------ numbering
def touch(folder, name, text=""):
    path = folder / name
    path.write_text(text)
    return path


def test_the_next_number_follows_the_highest_stored_one(tmp_path):
    assert store.next_number(tmp_path) == 1
    touch(tmp_path, "0001_c_20261128T160000Z.json")
    touch(tmp_path, "0007_c_20261128T170000Z.json")
    touch(tmp_path, "0009_c_20261128T170000Z.txt")  # not a document
    touch(tmp_path, "run-20261128T180000Z.json")  # the old layout has no number
    assert store.next_number(tmp_path) == 8


def test_store_path_reserves_an_empty_file_named_after_number_commit_and_time(tmp_path):
    doc = {"environment": ENV, "created": "2026-11-28T16:00:05Z"}
    path = store.store_path(tmp_path, doc)
    assert path == tmp_path / "bench-box-6c23d998" / "0001_abc-123_20261128T160005Z.json"
    assert path.exists() and path.stat().st_size == 0
    assert store.store_path(tmp_path, {"environment": {}, "created": "2026-11-28T16:00:05Z"}).name == \
        "0001_nocommit_20261128T160005Z.json"


def test_a_document_without_a_creation_time_is_stored_under_the_current_time(tmp_path):
    path = store.store_path(tmp_path, {"environment": ENV})
    assert store.STORED_NAME.match(path.name) and path.name.startswith("0001_abc-123_")


def test_a_number_taken_meanwhile_is_skipped_and_the_document_there_is_untouched(tmp_path, monkeypatch):
    """As when another machine's run shares the folder over a network file system
    whose lock does not hold: the exclusive create finds the name taken."""
    doc = {"environment": ENV, "created": "2026-11-28T16:00:05Z"}
    first = store.store_path(tmp_path, doc)
    first.write_text('{"results": ["theirs"]}')
    for number in (2, 3):
        touch(first.parent, f"000{number}_abc-123_20261128T160005Z.json", '{"results": ["also theirs"]}')
    monkeypatch.setattr(store, "next_number", lambda folder: 1)
    mine = store.store_path(tmp_path, doc)
    assert mine.name == "0004_abc-123_20261128T160005Z.json"
    assert first.read_text() == '{"results": ["theirs"]}'
    assert mine.stat().st_size == 0


def test_a_results_root_that_is_a_file_is_an_input_error_naming_out(tmp_path):
    root = touch(tmp_path, "not-a-folder")
    with pytest.raises(InputError) as caught:
        store.store_path(root, {"environment": ENV})
    assert caught.value.field == "--out" and caught.value.message.startswith("cannot create results folder: ")
    assert caught.value.source == str(root / store.machine_id(ENV))


def test_a_results_root_that_does_not_exist_yet_is_created(tmp_path):
    path = store.store_path(tmp_path / "new" / "results", {"environment": ENV, "created": "2026-11-28T16:00:05Z"})
    assert path.parent == tmp_path / "new" / "results" / "bench-box-6c23d998" and path.exists()


def test_a_result_file_that_cannot_be_created_is_an_input_error_naming_out(tmp_path, monkeypatch):
    real_open = os.open

    def refuse_create(path, flags, *args):
        if flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(store.os, "open", refuse_create)
    with pytest.raises(InputError) as caught:
        store.store_path(tmp_path, {"environment": ENV})
    assert caught.value.field == "--out" and caught.value.message == "cannot create a result file: Permission denied"
    assert caught.value.source == str(tmp_path / store.machine_id(ENV))


# ------------------------------------------------------------ finding runs
def test_stored_runs_are_ordered_by_time_then_number_and_skip_what_is_not_a_run(tmp_path):
    machine = tmp_path / "m-1"
    machine.mkdir()
    late = touch(machine, "0001_c_20261128T170000Z.json", "{}")
    second = touch(machine, "0010_c_20261128T160000Z.json", "{}")
    first = touch(machine, "0009_c_20261128T160000Z.json", "{}")
    legacy = touch(tmp_path, "run-20261128T160000Z.json", "{}")
    touch(machine, "0011_c_20261128T180000Z.json")  # reserved, not written yet
    torn = touch(machine, "0012_c_20261128T190000Z.json", "{")  # written in part: readers must warn about it
    touch(machine, "notes.json", "{}")  # no time in the name
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    touch(deep, "0001_c_20261128T150000Z.json", "{}")  # two folders deep
    runs = store.stored_runs(tmp_path)
    assert [r.path for r in runs] == [legacy, first, second, late, torn]
    assert [(r.stamp, r.number) for r in runs] == [("20261128T160000Z", 0), ("20261128T160000Z", 9),
                                                    ("20261128T160000Z", 10), ("20261128T170000Z", 1),
                                                    ("20261128T190000Z", 12)]


# ------------------------------------------------------------ the schema
def test_a_schema_0_document_has_its_metrics_renamed_without_overwriting_newer_ones():
    doc = {"results": [{"metrics": {"samples_per_second": 5.0, "samples_per_second_stats": {"n": 1},
                                    "samples_per_second_samples": [5.0]}},
                       {"metrics": {"samples_per_second": 1.0, "samples_per_sec": 2.0}},
                       {"scenario": "no metrics"}]}
    upgraded = schema.upgrade(doc)
    assert upgraded["schema_version"] == 3
    assert upgraded["results"][0]["metrics"] == {"samples_per_sec": 5.0, "samples_per_sec_stats": {"n": 1},
                                                 "samples_per_sec_samples": [5.0]}
    assert upgraded["results"][1]["metrics"] == {"samples_per_second": 1.0, "samples_per_sec": 2.0}


def test_a_current_document_is_not_changed_by_the_upgrade():
    doc = {"schema_version": 2, "results": [{"metrics": {"samples_per_second": 5.0}}]}
    assert schema.upgrade(doc)["results"][0]["metrics"] == {"samples_per_second": 5.0}


def test_the_schema_version_is_read_as_a_number():
    assert schema.schema_version({}) == 0
    assert schema.schema_version({"schema_version": "1"}) == 1


def good_row(**changes):
    return {"scenario": "s", "backend": "b", "status": "ok", "metrics": {}, **changes}


@pytest.mark.parametrize("document, message", [
    ([], "not a dlbench result document (no list of results)"),
    ({"results": {}}, "not a dlbench result document (no list of results)"),
    ({"schema_version": "one", "results": []}, "schema_version 'one' is not a number"),
    ({"schema_version": 4, "results": []}, "schema_version 4 is newer than this dlbench understands (3)"),
    ({"schema_version": 1, "settings": [], "results": []}, "settings: expected an object, got list"),
    ({"schema_version": 1, "results": [good_row(), 3]}, "results[1]: expected an object, got int"),
    ({"schema_version": 1, "results": [good_row(backend=7)]}, "results[0].backend: expected a string, got 7"),
    ({"schema_version": 1, "results": [{"scenario": "s", "status": "ok"}]}, "results[0].backend: missing"),
    ({"schema_version": 1, "results": [good_row(status="OK")]}, "results[0].status: unknown 'OK'"),
    ({"schema_version": 1, "results": [good_row(metrics=None)]}, "results[0].metrics: expected an object"),
], ids=["not an object", "results not a list", "version not a number", "newer version", "settings",
        "row not an object", "field of the wrong type", "missing field", "unknown status", "metrics"])
def test_malformed_documents_are_refused_naming_the_source_and_the_problem(document, message):
    with pytest.raises(InputError) as caught:
        schema.checked_document(document, "run.json")
    assert caught.value.source == "run.json" and message in caught.value.message


def test_a_well_formed_document_of_every_status_is_accepted_and_upgraded():
    rows = [good_row(status=s) for s in ("ok", "failed", "unavailable", "timeout", "diverged", "interrupted")]
    doc = schema.checked_document({"results": rows}, "run.json")
    assert doc["schema_version"] == 3 and doc["results"] == rows
    assert all(row["mode"] == "train" for row in doc["results"])  # what every version-1 row measured


def test_runs_of_the_same_time_and_number_on_several_machines_are_ordered_by_path(tmp_path):
    names = ["m-3", "m-1", "m-5", "m-2", "m-4"]
    for name in names:
        (tmp_path / name).mkdir()
        touch(tmp_path / name, "0001_c_20261128T160000Z.json", "{}")
    assert [r.path.parent.name for r in store.stored_runs(tmp_path)] == sorted(names)


def test_a_schema_0_document_without_results_upgrades_too():
    assert schema.upgrade({"created": "x"}) == {"created": "x", "schema_version": 3}


def test_a_file_that_is_no_result_document_says_so_exactly():
    with pytest.raises(InputError) as caught:
        schema.checked_document({"rows": []}, "run.json")
    assert caught.value.message == "not a dlbench result document (no list of results)"


def test_a_schema_2_verdict_reads_as_three_values_and_no_checkpoint_as_not_judged():
    """Schema 2 stored ``agrees`` only, and a run too short for a checkpoint as "no (0/0)"."""
    rows = [{"parity": {"kind": "certificate", "agrees": False, "checkpoints": 0, "checkpoints_agreeing": 0}},
            {"parity": {"kind": "certificate", "agrees": False, "checkpoints": 8, "checkpoints_agreeing": 2}},
            {"parity": {"kind": "loss-history", "agrees": True}}, {"parity": None}, {}]
    upgraded = schema.upgrade({"schema_version": 2, "results": rows})["results"]
    assert (upgraded[0]["parity"]["verdict"], upgraded[0]["parity"]["agrees"]) == ("not judged", None)
    assert upgraded[0]["parity"]["reason"] == "too short: no checkpoint"
    assert [r["parity"]["verdict"] for r in upgraded[1:3]] == ["disagrees", "agrees"]
    assert upgraded[3:] == [{"parity": None}, {}]
