"""JSON API v1, the builds part: detection, builds and their logs, the ledger, merges, registry
logins and builder nodes. Each view declares its schema beside it (`portal.apiview.Op`)."""
