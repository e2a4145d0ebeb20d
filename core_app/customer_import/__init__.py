"""Customer imports: fetching files, batched PostgreSQL writes and the job that runs an import."""
