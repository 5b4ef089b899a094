"""Where Optuna studies live: a journal file (the default), an SQLite file or a database URL, opened as an
Optuna storage. Used by the tuner (pipeline.tune) and the report. docs/TUNING.md says what each kind
guarantees when a worker dies."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna

from competition.core.log import UserError

DEFAULT_STORAGE = "tune/optuna.journal"  # of an experiment, inside oof/<exp>/
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
HEARTBEAT_SECONDS = 60  # database storages: a trial is stale after 3 beats without news


class StorageError(UserError, RuntimeError):
    """A study storage that cannot be opened: database down, wrong URL, missing driver."""


@dataclass
class Storage:
    storage: optuna.storages.BaseStorage
    url: str  # for messages and optuna-dashboard: the file, or the URL with its password masked


def open_storage(spec: str, heartbeat: int = HEARTBEAT_SECONDS) -> Storage:
    """A journal file (default), an SQLite file (.db/.sqlite) or a database URL, as an Optuna storage."""
    if "://" not in spec and Path(spec).suffix not in SQLITE_SUFFIXES:
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage
        Path(spec).parent.mkdir(parents=True, exist_ok=True)
        return Storage(JournalStorage(JournalFileBackend(spec, lock_obj=JournalFileOpenLock(spec))), spec)
    import sqlalchemy
    if "://" not in spec:
        Path(spec).parent.mkdir(parents=True, exist_ok=True)
        spec = f"sqlite:///{spec}"
    try:
        url = sqlalchemy.engine.make_url(spec)
    except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
        raise StorageError(f"--storage is neither a file nor a database URL: {exc}") from None
    shown = url.render_as_string(hide_password=True)
    # a database that does not answer is an error within seconds, not a hang; SQLite waits for its file lock
    connect = {"timeout": 60} if url.get_backend_name() == "sqlite" else {"connect_timeout": 10}
    retries = 2  # when other workers create the tables of a new database at the same moment
    while True:
        try:
            with warnings.catch_warnings():  # heartbeats and the retry callback are "experimental" since 2.8
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return Storage(optuna.storages.RDBStorage(
                    spec, engine_kwargs={"connect_args": connect}, heartbeat_interval=heartbeat,
                    grace_period=3 * heartbeat,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)),
                    shown)
        except (sqlalchemy.exc.SQLAlchemyError, ImportError) as exc:
            if retries and (isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc)):
                retries -= 1
                continue
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            if url.password:
                reason = reason.replace(str(url.password), "***")
            if isinstance(exc, ImportError):
                reason += " (requirements.txt pins psycopg[binary] for postgresql://)"
            raise StorageError(f"cannot open the study storage {shown}: {reason}") from None
