"""A real coordination server process (``python -m klamm.zk``, or ``klamm zk start`` with
``cli=True``) for kill -9 tests."""

from __future__ import annotations

from tests.support.processes import ServerProcess


class ZkProcess(ServerProcess):
    what = "zk server"

    def __init__(self, data_dir: str, port: int = 0, *overrides: str, cli: bool = False) -> None:
        super().__init__(data_dir, port)
        self.overrides = overrides
        self.cli = cli

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        args = ["klamm.broker.cli", "zk", "start"] if self.cli else ["klamm.zk"]
        args += ["--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir]
        for item in self.overrides:
            args += ["--override", item]
        return args

    def start(self, timeout: float = 30.0) -> "ZkProcess":
        super().start(timeout)
        return self
