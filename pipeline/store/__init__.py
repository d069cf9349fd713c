"""The embedding store (LanceDB): its tables and keys, the run-side cache,
and the writer lock that keeps two runs from corrupting one store."""
