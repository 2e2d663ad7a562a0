"""``DjangoBackend``: the backend contract on the Django ORM (SQLite, PostgreSQL, MariaDB/MySQL).

The public home of the backend. It loads every flavour, so ``DjangoBackend(using)`` and
:meth:`DjangoBackend.flavour` always find the class of the alias's database:

- :class:`DjangoBackend` (:mod:`taskkit_django._orm`): the portable ORM code, MariaDB/MySQL's
  flavour as it is. Claims lock rows with ``SELECT … FOR UPDATE SKIP LOCKED`` in a short
  transaction; time is the database's clock; every change of a claimed task is fenced by its
  token.
- :class:`SQLiteBackend` (:mod:`taskkit_django._sqlite`): writers serialised by
  ``BEGIN IMMEDIATE``, waits on ``PRAGMA data_version``.
- :class:`PostgresBackend` (:mod:`taskkit_django._postgres`): one-statement claims, puts and
  finishes with their ``pg_notify``, waits on ``LISTEN``.

Row conversions and the state constants they share are in :mod:`taskkit_django._rows`;
imports run from here to the flavours, from the flavours to ``_orm``, and from all to
``_rows``, never back.
"""

from __future__ import annotations

from ._orm import DjangoBackend
from ._postgres import PostgresBackend
from ._sqlite import SQLiteBackend

__all__ = ["DjangoBackend", "PostgresBackend", "SQLiteBackend"]
