"""The whole conformance kit (taskkit-testing) on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import URLS, clean_alias, require
from django.db import transaction
from handlers import AliasFactory, RealClockFactory
from taskkit_testing import BackendTests, KitSettings

#: Tests whose scenario needs the full workload: with fewer tasks the fast workers can
#: finish everything before the slow victim process holds a claim to be killed with.
FULL_SIZE = {"test_sigkill_under_load_loses_nothing"}


class _DjangoKit(BackendTests):
    alias = ""

    @pytest.fixture
    def kit_settings(self, request: pytest.FixtureRequest) -> KitSettings:
        settings = KitSettings.from_config(request.config)
        if request.node.originalname in FULL_SIZE:
            return dataclasses.replace(settings, scale=max(settings.scale, 1.0))
        return settings

    @pytest.fixture
    def backend_factory(self) -> Iterator[AliasFactory]:
        require(self.alias)
        clean_alias(self.alias)
        yield AliasFactory(self.alias, URLS[self.alias])

    @pytest.fixture
    def backend_transaction(self) -> Callable[[], Any]:
        return lambda: transaction.atomic(using=self.alias)


class TestSQLite(_DjangoKit):
    alias = "sqlite"


@pytest.mark.postgresql
class TestPostgreSQL(_DjangoKit):
    alias = "pg"


@pytest.mark.postgresql
class TestPostgreSQLRealClock(_DjangoKit):
    """PostgreSQL again with the database's clock in every test: the one-statement claim runs
    only without a fake clock, so this is where the kit checks it, and the outcome statement
    on the database's clock (tests that need to move time by hand are skipped)."""

    alias = "pg"

    @pytest.fixture
    def backend_factory(self) -> Iterator[RealClockFactory]:
        require(self.alias)
        clean_alias(self.alias)
        yield RealClockFactory(self.alias, URLS[self.alias])


@pytest.mark.mysql
class TestMariaDB(_DjangoKit):
    alias = "mysql"
