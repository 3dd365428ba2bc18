"""Every client operation against a real in-process server: results, stats and errors."""

from __future__ import annotations

import pytest

from klamm.zk import (BadArgumentsError, BadVersionError, Check, Create, DataTooLargeError,
                      Delete, NodeExistsError, NoNodeError, NotEmptyError, SetData)
from klamm.zk.errors import NoChildrenForEphemeralsError
from tests.zk.conftest import ClientFactory


async def test_create_get_set_delete_with_versions(zk: ClientFactory) -> None:
    c = await zk()
    assert await c.create("/a", b"one") == "/a"
    data, stat = await c.get("/a")
    assert data == b"one" and stat.version == 0
    stat = await c.set("/a", b"two", version=0)
    assert stat.version == 1
    with pytest.raises(BadVersionError):
        await c.set("/a", b"three", version=0)
    with pytest.raises(BadVersionError):
        await c.delete("/a", version=0)
    await c.delete("/a", version=1)
    assert await c.exists("/a") is None
    with pytest.raises(NoNodeError):
        await c.get("/a")


async def test_create_variants_and_their_errors(zk: ClientFactory) -> None:
    c = await zk()
    assert await c.create("/x/y/z", makepath=True) == "/x/y/z"
    with pytest.raises(NodeExistsError):
        await c.create("/x")
    with pytest.raises(NoNodeError):
        await c.create("/nope/child")
    seq = [await c.create("/x/s-", sequential=True) for _ in range(2)]
    assert seq == ["/x/s-0000000001", "/x/s-0000000002"]
    assert await c.get_children("/x") == ["s-0000000001", "s-0000000002", "y"]
    eph = await c.create("/x/e", ephemeral=True)
    assert (await c.exists(eph)).ephemeral_owner == c.session_id  # type: ignore[union-attr]
    with pytest.raises(NoChildrenForEphemeralsError):
        await c.create("/x/e/child")
    with pytest.raises(NotEmptyError):
        await c.delete("/x")
    await c.delete("/x", recursive=True)
    assert await c.get_children("/") == []


async def test_multi_is_all_or_nothing(zk: ClientFactory) -> None:
    c = await zk()
    await c.create("/m", b"0")
    with pytest.raises(BadVersionError) as info:
        await c.multi([Create("/m/a"), SetData("/m", b"1"), Check("/m", 0)])
    assert info.value.index == 2  # type: ignore[attr-defined]
    assert await c.get_children("/m") == [] and (await c.get("/m"))[0] == b"0"
    results = await c.multi([Check("/m", 0), Create("/m/a", b"a"), SetData("/m", b"1", 0),
                             Delete("/m/a")])
    assert results[0] is None and results[1] == "/m/a" and results[2].version == 1  # type: ignore[union-attr]
    assert results[3] is None and await c.exists("/m/a") is None


async def test_bad_input_gets_a_clear_error_and_the_session_keeps_working(
        zk: ClientFactory) -> None:
    c = await zk()
    with pytest.raises(BadArgumentsError):
        await c.create("relative")
    with pytest.raises(DataTooLargeError, match="max.node.bytes"):
        await c.create("/big", b"x" * (1024 * 1024 + 1))
    assert await c.create("/ok") == "/ok"


async def test_chroot_isolates_two_clusters(zk: ClientFactory) -> None:
    root = await zk()
    await root.create("/klamm-a", makepath=True)
    await root.create("/klamm-b", makepath=True)
    a = await zk(chroot="/klamm-a")
    b_client = await zk(hosts=f"{root.hosts[0][0]}:{root.hosts[0][1]}/klamm-b")
    assert await a.create("/brokers/ids/1", b"a", makepath=True) == "/brokers/ids/1"
    assert await b_client.exists("/brokers/ids/1") is None
    await b_client.create("/brokers/ids/1", b"b", makepath=True)
    assert (await a.get("/brokers/ids/1"))[0] == b"a"
    assert (await b_client.get("/brokers/ids/1"))[0] == b"b"
    assert await root.get_children("/klamm-a/brokers/ids") == ["1"]
    assert await a.get_children("/") == ["brokers"]
    seq = await a.create("/q-", sequential=True)
    assert seq.startswith("/q-") and not seq.startswith("/klamm-a")
