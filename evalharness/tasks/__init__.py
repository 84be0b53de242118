"""mteb tasks of the harness: `offline` holds the "offline-mini" benchmark built from package data
(one module per task), `resolve` turns names into task instances, `interface` is the one interface
the runner sees (`RunTask`), `mteb_task` its mteb implementation. `resolve` imports `offline`, never
the reverse; this package imports nothing, so importing one of them loads only what it needs."""
