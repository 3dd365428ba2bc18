"""The data tree as a pure state machine: every op, version checks, multi atomicity, and
copy-on-write images for snapshots."""

from __future__ import annotations

import sys
import threading

import pytest

from klamm.zk import snapshot as snapshots
from klamm.zk.errors import (BadArgumentsError, BadVersionError, NoChildrenForEphemeralsError,
                             NodeExistsError, NoNodeError, NotEmptyError, SessionExpiredError)
from klamm.zk.tree import DataTree, WatchEvent, validate_path
from klamm.zk.txn import (CheckTxn, CloseSessionTxn, CreateSessionTxn, CreateTxn, DeleteTxn,
                          MultiTxn, SetTxn, Txn, decode_txn, encode_txn)


class Applier:
    def __init__(self) -> None:
        self.tree = DataTree()
        self.zxid = 0

    def __call__(self, txn):  # type: ignore[no-untyped-def]
        self.zxid += 1
        return self.tree.apply(txn, self.zxid, 1000 + self.zxid)


@pytest.fixture
def apply() -> Applier:
    return Applier()


def test_create_get_set_delete_round_trip_with_stats(apply: Applier) -> None:
    assert apply(CreateTxn("/a", b"x"))[0] == "/a"
    data, stat = apply.tree.get("/a")
    assert data == b"x" and stat.version == 0 and stat.czxid == 1 and stat.data_length == 1
    stat2, events = apply(SetTxn("/a", b"yy", 0))
    assert stat2.version == 1 and stat2.mzxid == 2 and stat2.czxid == 1
    assert events == [WatchEvent("changed", "/a")]
    assert apply.tree.get_children("/")[0] == ["a"]
    _, events = apply(DeleteTxn("/a", 1))
    assert events == [WatchEvent("deleted", "/a"), WatchEvent("child", "/")]
    assert apply.tree.exists("/a") is None
    assert apply.tree.get_children("/")[1].cversion == 2


def test_set_and_delete_refuse_a_stale_version(apply: Applier) -> None:
    apply(CreateTxn("/a"))
    apply(SetTxn("/a", b"1"))
    with pytest.raises(BadVersionError):
        apply(SetTxn("/a", b"2", 0))
    with pytest.raises(BadVersionError):
        apply(DeleteTxn("/a", 0))
    assert apply.tree.get("/a")[0] == b"1"


def test_create_errors_name_the_problem(apply: Applier) -> None:
    with pytest.raises(NoNodeError):
        apply(CreateTxn("/a/b"))
    apply(CreateTxn("/a"))
    with pytest.raises(NodeExistsError):
        apply(CreateTxn("/a"))
    with pytest.raises(NoNodeError):
        apply(SetTxn("/missing", b""))
    with pytest.raises(NoNodeError):
        apply(DeleteTxn("/missing"))
    with pytest.raises(BadArgumentsError):
        apply(DeleteTxn("/"))


def test_makepath_creates_missing_parents(apply: Applier) -> None:
    assert apply(CreateTxn("/a/b/c", b"d", makepath=True))[0] == "/a/b/c"
    assert apply.tree.get_children("/a/b")[0] == ["c"]
    assert apply.tree.get("/a/b/c")[0] == b"d"


def test_sequential_nodes_get_increasing_ten_digit_suffixes(apply: Applier) -> None:
    apply(CreateTxn("/q"))
    paths = [apply(CreateTxn("/q/n-", sequential=True))[0] for _ in range(3)]
    assert paths == ["/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"]
    apply(DeleteTxn(paths[2]))
    assert apply(CreateTxn("/q/n-", sequential=True))[0] == "/q/n-0000000004"


def test_delete_refuses_a_node_with_children_unless_recursive(apply: Applier) -> None:
    apply(CreateTxn("/a/b/c", makepath=True))
    with pytest.raises(NotEmptyError):
        apply(DeleteTxn("/a"))
    _, events = apply(DeleteTxn("/a", recursive=True))
    assert WatchEvent("deleted", "/a/b/c") in events and WatchEvent("deleted", "/a") in events
    assert list(apply.tree.walk()) == ["/"]


def test_ephemeral_nodes_belong_to_an_open_session_and_vanish_on_close(apply: Applier) -> None:
    with pytest.raises(SessionExpiredError):
        apply(CreateTxn("/e", ephemeral_owner=7))
    apply(CreateSessionTxn(7, 1000, b"pw"))
    apply(CreateTxn("/e", ephemeral_owner=7))
    apply(CreateTxn("/p"))
    assert apply.tree.exists("/e").ephemeral_owner == 7  # type: ignore[union-attr]
    with pytest.raises(NoChildrenForEphemeralsError):
        apply(CreateTxn("/e/child"))
    _, events = apply(CloseSessionTxn(7))
    assert events == [WatchEvent("deleted", "/e"), WatchEvent("child", "/")]
    assert apply.tree.exists("/e") is None and apply.tree.exists("/p") is not None
    assert 7 not in apply.tree.sessions


def test_failing_multi_leaves_nothing_applied(apply: Applier) -> None:
    apply(CreateTxn("/a", b"0"))
    before = apply.tree.dump()
    with pytest.raises(BadVersionError) as info:
        apply(MultiTxn((CreateTxn("/b"), SetTxn("/a", b"1"), DeleteTxn("/a"),
                        CreateTxn("/x/y", makepath=True), CheckTxn("/b", 5))))
    assert info.value.index == 4  # type: ignore[attr-defined]
    after = apply.tree.dump()
    assert after["nodes"] == before["nodes"] and apply.tree.last_zxid == 1


def test_successful_multi_applies_every_op_under_one_zxid(apply: Applier) -> None:
    apply(CreateTxn("/a", b"0"))
    results, _ = apply(MultiTxn((CheckTxn("/a", 0), SetTxn("/a", b"1", 0),
                                 CreateTxn("/b", sequential=True))))
    assert results[0] is None and results[1].version == 1 and results[2] == "/b0000000001"
    assert apply.tree.exists("/b0000000001").czxid == 2  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", ["", "a", "/a/", "//a", "/a/../b", "/a/./b", "/a\0b", 5])
def test_invalid_paths_are_refused(bad: object) -> None:
    with pytest.raises(BadArgumentsError):
        validate_path(bad)


def test_dump_and_load_reproduce_the_tree(apply: Applier) -> None:
    apply(CreateSessionTxn(3, 500, b"p"))
    apply(CreateTxn("/a/b", b"1", makepath=True))
    apply(CreateTxn("/a/e", ephemeral_owner=3))
    copy = DataTree.load(apply.tree.dump())
    assert copy.dump() == apply.tree.dump()
    assert copy.ephemerals == {3: {"/a/e"}} and copy.get_children("/a")[0] == ["b", "e"]


def test_transactions_survive_encoding() -> None:
    txns: list[Txn] = [
        CreateTxn("/a", b"d", 4, True, True), DeleteTxn("/a", 3, True), SetTxn("/a", b"", 1),
        MultiTxn((CheckTxn("/a", 2), CreateTxn("/b"))), CreateSessionTxn(1, 2, b"x"),
        CloseSessionTxn(9)]
    assert [decode_txn(encode_txn(t)) for t in txns] == txns


def _build(apply: Applier) -> None:
    apply(CreateSessionTxn(3, 500, b"p"))
    apply(CreateTxn("/a/b", b"1", makepath=True))
    apply(CreateTxn("/a/e", ephemeral_owner=3))
    apply(CreateTxn("/gone/deep", b"2", makepath=True))
    for i in range(40):
        apply(CreateTxn(f"/n/{i}", b"%d" % i, makepath=True))


def test_a_frozen_image_reads_the_tree_as_of_its_zxid_while_the_tree_moves_on(
        apply: Applier) -> None:
    _build(apply)
    expected = apply.tree.dump()
    image = apply.tree.freeze()
    apply(SetTxn("/a/b", b"changed"))
    apply(SetTxn("/a/b", b"changed again"))
    apply(CreateTxn("/a/new"))  # parent's cversion and pzxid change in place
    apply(DeleteTxn("/n/3"))
    apply(CreateTxn("/n/3", b"reborn"))  # a new node object at an old path
    apply(SetTxn("/n/3", b"reborn, set"))
    apply(DeleteTxn("/gone", recursive=True))
    apply(CloseSessionTxn(3))
    apply(CreateSessionTxn(4, 500, b"q"))
    with pytest.raises(BadVersionError):  # rolled back: its undo must not leak into the image
        apply(MultiTxn((SetTxn("/n/5", b"x"), CreateTxn("/n/9/c"), CheckTxn("/n/5", 7))))
    assert apply.tree.dump() != expected
    pieces = snapshots.encode_image(image, chunk_rows=7)
    assert b"".join(pieces) == snapshots.encode_snapshot(expected)
    assert snapshots.decode_snapshot(b"".join(pieces)) == expected
    apply.tree.thaw(image)
    apply(SetTxn("/n/6", b"after thaw"))
    assert not image.saved.get("/n/6")
    with pytest.raises(RuntimeError, match="released"):
        snapshots.encode_image(image)
    second = apply.tree.freeze()  # one image at a time, and a new one may follow
    with pytest.raises(RuntimeError, match="already"):
        apply.tree.freeze()
    apply.tree.thaw(second)


N_THREADED = 20000


def test_an_image_encoded_in_a_thread_while_writes_continue_is_exact(apply: Applier) -> None:
    for i in range(N_THREADED):
        apply(CreateTxn(f"/p{i % 30}/n{i}", b"v", makepath=True))
    expected = snapshots.encode_snapshot(apply.tree.dump())
    image = apply.tree.freeze()
    result: list[list[bytes]] = []
    writer = threading.Thread(target=lambda: result.append(
        snapshots.encode_image(image, chunk_rows=16)))
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL back and forth as often as possible
    try:
        writer.start()
        i = 0
        while writer.is_alive() or i < 300:  # change nodes before, during, after their read
            k = N_THREADED - 1 - (i * 7) % N_THREADED  # the last rows are read last
            path = f"/p{k % 30}/n{k}"
            apply(SetTxn(path, b"w%d" % i))
            apply(CreateTxn(f"/p{i % 30}/x{i}"))
            if i % 3 == 0:
                apply(DeleteTxn(path))
                apply(CreateTxn(path, b"again"))
            i += 1
        writer.join()
    finally:
        sys.setswitchinterval(interval)
    assert image.saved  # writes did land while the image was open
    apply.tree.thaw(image)
    assert b"".join(result[0]) == expected
