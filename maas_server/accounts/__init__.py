"""Accounts: API keys, per-key rate limits and usage metering, kept in one SQL store.

```
settings.py   AccountSettings: where the store lives (MAAS_DATA_DIR / MAAS_DATABASE_URL), Redis, auth cache
store.py      the SQL store (SQLAlchemy Core: SQLite or PostgreSQL), its schema, forward migrations, and
              StoreUnavailable: the store fails closed and recovers by itself
keys.py       creating, listing, updating, revoking keys and their scopes; Authenticator (hash lookup, short cache)
scopes.py     the models and tasks a key may use, checked against the configuration (aliases resolved)
audit.py      the append-only audit log of key changes: who, from where, what, when
limits.py     requests/min and tokens/min per key: SqlLimiter (one server) or RedisLimiter (several)
usage.py      one row per request (never its content) and the summaries read back from them
```
Nothing here knows about Flask: ``maas_server.api.accounting`` wires it to requests.
"""

from .keys import ApiKey, Authenticator, AuthError, KeyStoreError, create_key, list_keys, revoke_key
from .limits import Decision, Limits, RateLimiter, RedisLimiter, SqlLimiter
from .settings import AccountSettings
from .store import Store, StoreUnavailable
from .usage import UsageRecord, UsageWriter, record_usage, usage_summary

__all__ = [
    "AccountSettings",
    "ApiKey",
    "AuthError",
    "Authenticator",
    "Decision",
    "KeyStoreError",
    "Limits",
    "RateLimiter",
    "RedisLimiter",
    "SqlLimiter",
    "Store",
    "StoreUnavailable",
    "UsageRecord",
    "UsageWriter",
    "create_key",
    "list_keys",
    "record_usage",
    "revoke_key",
    "usage_summary",
]
