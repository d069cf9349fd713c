"""The embedding store (LanceDB): its keys (:mod:`~pipeline.store.keys`), format
(:mod:`~pipeline.store.schema`, :mod:`~pipeline.store.rows`), the store itself
(:mod:`~pipeline.store.db`), the run-side cache (:mod:`~pipeline.store.cache`),
and the writer lock that keeps two runs from corrupting one store
(:mod:`~pipeline.store.lock`)."""
