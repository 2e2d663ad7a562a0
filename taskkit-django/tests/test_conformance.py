"""The whole conformance kit (taskkit-testing) on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import URLS, clean_alias, require
from django.db import transaction
from handlers import AliasFactory
from taskkit_testing import BackendTests


class _DjangoKit(BackendTests):
    alias = ""

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


@pytest.mark.mysql
class TestMariaDB(_DjangoKit):
    alias = "mysql"
