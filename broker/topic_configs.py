"""TopicConfigs: each topic's config overrides, as stored in the coordination service.

A topic's effective config is the broker's ``log.*`` defaults overlaid with its overrides
(``TopicConfig.effective``). Overrides are read when this broker first hosts or describes a
topic and re-read when a config change notice names the topic (``ConfigChangeListener``), so
every broker applies an ALTER_CONFIGS. Stored values that no longer validate (written by a
newer version, say) are reported once and the defaults are used for those keys. Single-
threaded (event loop).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from klamm.protocol.config import ConfigError

from .cluster.store import ClusterStore
from .config import BrokerConfig, TopicConfig

log = logging.getLogger(__name__)


class TopicConfigs:
    def __init__(self, broker: BrokerConfig, store: ClusterStore) -> None:
        self.broker = broker
        self.store = store
        self.overrides: dict[str, dict[str, Any]] = {}

    def effective(self, topic: str) -> TopicConfig:
        overrides = self.overrides.get(topic, {})
        try:
            return TopicConfig.effective(self.broker, overrides)
        except ConfigError as exc:
            log.error("stored config of topic %s is invalid (%s); using the broker defaults",
                      topic, exc)
            return self.broker.topic_defaults()

    async def load(self, topics: Iterable[str]) -> None:
        """Read the overrides of the topics not read yet."""
        missing = sorted({t for t in topics if t not in self.overrides})
        if not missing:
            return
        found = await asyncio.gather(*(self.store.topic_configs(t) for t in missing))
        for topic, overrides in zip(missing, found, strict=True):
            self.overrides[topic] = dict(overrides)

    async def refresh(self, topic: str) -> TopicConfig:
        self.overrides[topic] = dict(await self.store.topic_configs(topic))
        return self.effective(topic)

    def forget(self, topic: str) -> None:
        self.overrides.pop(topic, None)


class ConfigChangeListener:
    """Watches config change notices and re-reads the topics they name; ``on_change(topic)``
    then applies the new config. Beyond the newest ``KEEP_NOTICES``, notices are removed by
    whichever broker sees them (a broker that starts reads every config afresh, so it needs
    no old notice)."""

    KEEP_NOTICES = 100

    def __init__(self, store: ClusterStore, configs: TopicConfigs,
                 on_change: Callable[[str, TopicConfig], None]) -> None:
        self.store = store
        self.configs = configs
        self.on_change = on_change
        self._seen: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        notices = await self.store.config_changes(watch=self._watch)
        self._seen = notices[-1] if notices else ""  # what exists now is already in the reads
        self._task = asyncio.get_running_loop().create_task(self._run(), name="config-changes")

    def _watch(self, _event: object) -> None:
        self._wake.set()

    def rearm(self) -> None:
        """Read the notices again and re-arm the watch (after a new session: watches of the
        expired one are gone)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                notices = await self.store.config_changes(watch=self._watch)
                for notice in notices:
                    if self._seen is not None and notice <= self._seen:
                        continue
                    topic = await self.store.config_change_topic(notice)
                    self._seen = notice
                    if topic is not None and topic in self.configs.overrides:
                        self.on_change(topic, await self.configs.refresh(topic))
                await self._purge(notices)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reading config changes failed (%s); retrying", exc)
                await asyncio.sleep(1.0)
                self._wake.set()

    async def _purge(self, notices: list[str]) -> None:
        if len(notices) <= self.KEEP_NOTICES:
            return
        for notice in notices[:-self.KEEP_NOTICES]:
            await self.store.delete_config_change(notice)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
