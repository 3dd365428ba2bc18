from tests.zk.conftest import zk, zk_server  # noqa: F401 - shared coordination fixtures
