"""Source kinds: one module per kind of user data (a table, an image folder, an array file), each
declaring a `SourceType` (base.py); `data.source.SOURCE_TYPES` lists them, one line per kind."""
